package nft

import (
	"net"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/vishvananda/netns"
)

func TestNAT(t *testing.T) {
	sa, sb := subnetsAB()
	l := newLab(t, sa, sb)
	a1 := l.addInstance("a1", sa, addr("10.77.1.10"))
	a2 := l.addInstance("a2", sa, addr("10.77.1.11"))
	b1 := l.addInstance("b1", sb, addr("10.77.2.10"))
	pubA1, pubNAT := addr("203.0.113.10"), addr("203.0.113.20")
	l.addGateway("nfgw", pubA1, pubNAT)
	// The internet also knows a route to the VPC's private range, to
	// show that the gateway does not let it in.
	ih := handleFor(t, l.inet)
	eth, err := ih.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	if err := ih.RouteAdd(&netlinkRoute{Dst: &net.IPNet{IP: net.IP{10, 77, 0, 0}, Mask: net.CIDRMask(16, 32)}, Gw: gwAddr.AsSlice(), Src: inetHost.AsSlice(), LinkIndex: eth.Attrs().Index}); err != nil {
		t.Fatal(err)
	}

	ssh := Group{ID: "sg-ssh", Egress: defaultEgress, Ingress: []Rule{{Protocol: ProtoTCP, FromPort: 22, ToPort: 22, CIDRs: cidrs("0.0.0.0/0")}}}
	g := []string{"sg-ssh"}
	e1 := a1.eni("eni-a1", sa, g...)
	e1.PublicIP = pubA1
	p := Policy{Subnets: []Subnet{sa, sb}, Groups: []Group{ssh},
		ENIs:    []ENI{e1, a2.eni("eni-a2", sa, g...), b1.eni("eni-b1", sb, g...)},
		Gateway: &Gateway{Link: "nfgw", NATs: []NAT{{ID: "nat-1", PublicIP: pubNAT, Sources: cidrs("10.77.2.0/24")}}}}
	l.apply(p)

	web := serveTCP(t, l.inet, hostport(inetHost, 80))
	sshA1 := serveTCP(t, a1.name, ":22")
	serveTCP(t, a1.name, ":23")
	serveTCP(t, b1.name, ":22")
	site := hostport(inetHost, 80)

	t.Run("public IP out", func(t *testing.T) {
		wantTCP(t, a1.name, site, true)
		if got := web.peers(); len(got) == 0 || !strings.HasPrefix(got[len(got)-1], pubA1.String()+":") {
			t.Errorf("the internet saw %v, want %s", got, pubA1)
		}
	})
	t.Run("NAT gateway out", func(t *testing.T) {
		wantTCP(t, b1.name, site, true)
		if got := web.peers(); len(got) == 0 || !strings.HasPrefix(got[len(got)-1], pubNAT.String()+":") {
			t.Errorf("the internet saw %v, want %s", got, pubNAT)
		}
	})
	t.Run("private-only ENI is dropped at the gateway", func(t *testing.T) {
		wantTCP(t, a2.name, site, false)
	})
	t.Run("public IP in, groups apply", func(t *testing.T) {
		wantTCP(t, l.inet, hostport(pubA1, 22), true)
		if got := sshA1.peers(); len(got) == 0 || !strings.HasPrefix(got[len(got)-1], inetHost.String()+":") {
			t.Errorf("a1 saw %v, want %s", got, inetHost)
		}
		wantTCP(t, l.inet, hostport(pubA1, 23), false)
	})
	t.Run("no way in to private addresses or through the NAT gateway", func(t *testing.T) {
		wantTCP(t, l.inet, hostport(b1.ip, 22), false)
		wantTCP(t, l.inet, hostport(a1.ip, 22), false)
		wantTCP(t, l.inet, hostport(pubNAT, 22), false)
	})
	t.Run("public IP removed", func(t *testing.T) {
		q := p
		q.ENIs = append([]ENI(nil), p.ENIs...)
		q.ENIs[0].PublicIP = netipAddr{}
		l.apply(q)
		wantTCP(t, a1.name, site, false)
		wantTCP(t, l.inet, hostport(pubA1, 22), false)
	})
}

// TestApplyReplacesOnlyOurTables: a smaller Policy leaves nothing of a
// larger one behind, a foreign table survives Apply and Delete, and
// Delete removes both of ours.
func TestApplyReplacesOnlyOurTables(t *testing.T) {
	needRoot(t)
	ns := "nf" + randHex(4) + "o"
	newNamedNS(t, ns)
	h, err := netns.GetFromName(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(h)))
	if err != nil {
		t.Fatal(err)
	}
	foreign := c.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: "someone_else"})
	c.AddChain(&nftables.Chain{Name: "keep", Table: foreign})
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	count := func() (chains int, elems int, tables []string) {
		ts, err := c.ListTables()
		if err != nil {
			t.Fatal(err)
		}
		for _, tb := range ts {
			tables = append(tables, tb.Name)
		}
		cs, err := c.ListChains()
		if err != nil {
			t.Fatal(err)
		}
		for _, ch := range cs {
			if ch.Table.Name == InetTable || ch.Table.Name == BridgeTable {
				chains++
			}
		}
		for _, tb := range ts {
			if tb.Name != InetTable && tb.Name != BridgeTable {
				continue
			}
			sets, err := c.GetSets(tb)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range sets {
				es, err := c.GetSetElements(s)
				if err != nil {
					t.Fatal(err)
				}
				elems += len(es)
			}
		}
		return
	}
	big := goldenCases()[3].p
	want := func(p Policy) (int, int) {
		ts, err := build(p)
		if err != nil {
			t.Fatal(err)
		}
		var ch, el int
		for _, tb := range ts {
			ch += len(tb.chains)
			for _, s := range tb.sets {
				el += len(s.elems)
			}
		}
		return ch, el
	}
	for _, step := range []struct {
		name string
		p    Policy
	}{{"big", big}, {"big again", big}, {"empty", Policy{}}, {"big after empty", big}, {"one subnet", goldenCases()[1].p}} {
		if err := Apply(ns, step.p); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		ch, el, tables := count()
		wch, wel := want(step.p)
		if ch != wch || el != wel {
			t.Errorf("%s: kernel has %d chains and %d set elements, the Policy %d and %d", step.name, ch, el, wch, wel)
		}
		if !contains(tables, "someone_else") {
			t.Errorf("%s: the foreign table is gone: %v", step.name, tables)
		}
	}
	if err := Delete(ns); err != nil {
		t.Fatal(err)
	}
	if err := Delete(ns); err != nil {
		t.Fatalf("second Delete: %v", err)
	}
	if _, _, tables := count(); len(tables) != 1 || tables[0] != "someone_else" {
		t.Errorf("after Delete the namespace has tables %v, want only someone_else", tables)
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func TestApplyToMissingNamespace(t *testing.T) {
	needRoot(t)
	ns := "nf" + randHex(4) + "missing"
	if err := Apply(ns, Policy{}); err == nil || !strings.Contains(err.Error(), ns) {
		t.Errorf("Apply to a missing namespace: %v, want an error naming it", err)
	}
	if err := Delete(ns); err == nil {
		t.Error("Delete in a missing namespace succeeded")
	}
}

package nft

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var labUplink = Uplink{Table: "labcloud_lc_uplink", Bridge: "lcpub", Link: "eno1", Pool: netip.MustParsePrefix("203.0.113.0/24")}

// TestRenderUplinkGolden: the uplink table is what testdata/uplink.golden
// holds (go test -run TestRenderUplinkGolden -update rewrites it).
func TestRenderUplinkGolden(t *testing.T) {
	got := RenderUplink(labUplink)
	path := filepath.Join("testdata", "uplink.golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("RenderUplink differs from %s:\n%s", path, got)
	}
}

func TestUplinkValidation(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Uplink)
		want string
	}{
		{"no uplink", func(u *Uplink) { u.Link = "" }, "uplink name"},
		{"long uplink", func(u *Uplink) { u.Link = "a-very-long-interface" }, "uplink name"},
		{"uplink is the bridge", func(u *Uplink) { u.Link = u.Bridge }, "cannot be the public bridge"},
		{"bad table", func(u *Uplink) { u.Table = "x y" }, "table name"},
		{"no pool", func(u *Uplink) { u.Pool = netip.Prefix{} }, "pool"},
		{"everything", func(u *Uplink) { u.Pool = netip.MustParsePrefix("0.0.0.0/0") }, "pool"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := labUplink
			tc.edit(&u)
			if got := RenderUplink(u); !strings.HasPrefix(got, "# invalid uplink") || !strings.Contains(got, tc.want) {
				t.Errorf("RenderUplink(%+v) = %q, want an error about %s", u, got, tc.want)
			}
			if err := ApplyUplink("/nonexistent/ns", u); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ApplyUplink(%+v) = %v, want the validation error", u, err)
			}
		})
	}
}

// TestUplinkRenderIsWhatApplyLoads: in two namespaces of the test's own
// (never the host), nft -f of RenderUplink and ApplyUplink list the same
// table; DeleteUplink removes that table and leaves another one alone.
func TestUplinkRenderIsWhatApplyLoads(t *testing.T) {
	needRoot(t)
	needNft(t)
	id := randHex(4)
	byText, byApply := "lsd"+id+"t", "lsd"+id+"a"
	newNamedNS(t, byText)
	newNamedNS(t, byApply)
	f := filepath.Join(t.TempDir(), "uplink.nft")
	if err := os.WriteFile(f, []byte(RenderUplink(labUplink)), 0o644); err != nil {
		t.Fatal(err)
	}
	nftList(t, byText, "-f", f)
	nftList(t, byApply, "add", "table", "ip", "someone_else")
	for i := 0; i < 2; i++ { // idempotent
		if err := ApplyUplink(byApply, labUplink); err != nil {
			t.Fatal(err)
		}
	}
	a := nftList(t, byText, "list", "table", "ip", labUplink.Table)
	b := nftList(t, byApply, "list", "table", "ip", labUplink.Table)
	if normalize(a) != normalize(b) {
		t.Errorf("nft -f of RenderUplink and ApplyUplink load different tables\n--- nft -f:\n%s\n--- ApplyUplink:\n%s", a, b)
	}
	if !strings.Contains(b, "masquerade") {
		t.Errorf("the uplink table has no masquerade:\n%s", b)
	}
	if err := DeleteUplink(byApply, labUplink.Table); err != nil {
		t.Fatal(err)
	}
	if err := DeleteUplink(byApply, labUplink.Table); err != nil {
		t.Fatalf("deleting a missing uplink table: %v", err)
	}
	rest := nftList(t, byApply, "list", "ruleset")
	if strings.Contains(rest, labUplink.Table) || !strings.Contains(rest, "someone_else") {
		t.Errorf("after DeleteUplink the ruleset is:\n%s\nwant only the other table", rest)
	}
}

package netfab

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// imdsAddr is where the instance metadata service listens, on the loopback
// of every VPC namespace; instances reach it through their default route
// (the router, base+1), which delivers it locally.
const imdsAddr = "169.254.169.254"

// InNamespace runs fn on an OS thread that has joined the named network
// namespace (a name under /var/run/netns). fn runs on a fresh goroutine
// locked to its thread; sockets fn creates stay in the namespace for their
// whole life, whichever thread later uses them. fn must not start
// goroutines that expect to be in the namespace. If the thread cannot be
// switched back it is left locked, so the runtime discards it.
func (f *Fabric) InNamespace(ns string, fn func() error) error { return inNamespace(ns, fn) }

func inNamespace(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("reading current network namespace: %w", err)
			return
		}
		defer orig.Close()
		target, err := netns.GetFromPath(filepath.Join(netnsDir, ns))
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("opening network namespace %s: %w", ns, err)
			return
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("entering network namespace %s: %w", ns, err)
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			// Stay locked: the thread dies with this goroutine.
			errc <- errors.Join(ferr, fmt.Errorf("leaving network namespace %s: %w", ns, err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// netnsExists reports whether a named namespace is mounted at its path.
func netnsExists(name string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(filepath.Join(netnsDir, name), &st); err != nil {
		return false
	}
	return st.Type == unix.NSFS_MAGIC
}

// ensureNetns creates the named namespace unless it is already there.
func ensureNetns(name string) error {
	if netnsExists(name) {
		return nil
	}
	// A leftover file that is no longer a mount would make NewNamed fail.
	_ = os.Remove(filepath.Join(netnsDir, name))
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		h, err := netns.NewNamed(name)
		if err != nil {
			// NewNamed may have unshared already; try to go back.
			if netns.Set(orig) == nil {
				runtime.UnlockOSThread()
			}
			if netnsExists(name) {
				errc <- nil // someone else made it meanwhile
				return
			}
			errc <- fmt.Errorf("creating network namespace %s: %w", name, err)
			return
		}
		h.Close()
		if err := netns.Set(orig); err != nil {
			errc <- fmt.Errorf("leaving new network namespace %s: %w", name, err)
			return
		}
		runtime.UnlockOSThread()
		errc <- nil
	}()
	return <-errc
}

// deleteNetns removes the named namespace: with no process left in it the
// kernel deletes its bridges, taps and veths.
func deleteNetns(name string) error {
	if err := netns.DeleteNamed(name); err != nil && !errors.Is(err, os.ErrNotExist) {
		if netnsExists(name) {
			return fmt.Errorf("deleting network namespace %s: %w", name, err)
		}
		_ = os.Remove(filepath.Join(netnsDir, name))
	}
	return nil
}

// listOurNetns returns the named namespaces whose name starts with prefix.
func listNetns(prefix string) ([]string, error) {
	ents, err := os.ReadDir(netnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if len(e.Name()) > len(prefix) && e.Name()[:len(prefix)] == prefix {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// writeSysctl writes a value under /proc/sys of the calling thread's
// network namespace (call it inside InNamespace).
func writeSysctl(path, value string) error {
	if err := os.WriteFile(filepath.Join("/proc/sys", path), []byte(value), 0o644); err != nil {
		return fmt.Errorf("setting %s=%s: %w", path, value, err)
	}
	return nil
}

// setupRouter configures a VPC namespace as the VPC router. Call it inside
// the namespace; every step is idempotent.
func setupRouter() error {
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("finding lo: %w", err)
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		return fmt.Errorf("bringing lo up: %w", err)
	}
	if err := addAddr(lo, imdsAddr+"/32"); err != nil {
		return err
	}
	for _, s := range [][2]string{
		{"net/ipv4/ip_forward", "1"},
		{"net/ipv4/conf/all/send_redirects", "0"},
		{"net/ipv4/conf/default/send_redirects", "0"},
	} {
		if err := writeSysctl(s[0], s[1]); err != nil {
			return err
		}
	}
	// br_netfilter is built in here, but on kernels where it is a module
	// that is not loaded these files do not exist and there is nothing to
	// turn off.
	for _, p := range []string{"bridge-nf-call-iptables", "bridge-nf-call-ip6tables", "bridge-nf-call-arptables"} {
		if err := writeSysctl("net/bridge/"+p, "0"); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

func addAddr(link netlink.Link, cidr string) error {
	a, err := netlink.ParseAddr(cidr)
	if err != nil {
		return err
	}
	if err := netlink.AddrAdd(link, a); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("adding %s to %s: %w", cidr, link.Attrs().Name, err)
	}
	return nil
}

// ensureBridge creates (or completes) a subnet bridge holding the router
// address base+1 and the resolver address base+2. Call it inside the VPC
// namespace.
func ensureBridge(name, mac string, routerCIDR, dnsCIDR string) error {
	link, err := netlink.LinkByName(name)
	if err != nil {
		hw, perr := net.ParseMAC(mac)
		if perr != nil {
			return perr
		}
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name, MTU: 1500, HardwareAddr: hw}}
		if err := netlink.LinkAdd(br); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("creating bridge %s: %w", name, err)
		}
		if link, err = netlink.LinkByName(name); err != nil {
			return fmt.Errorf("finding bridge %s: %w", name, err)
		}
	}
	if err := addAddr(link, routerCIDR); err != nil {
		return err
	}
	if err := addAddr(link, dnsCIDR); err != nil {
		return err
	}
	for _, s := range [][2]string{
		{"net/ipv4/conf/" + name + "/proxy_arp_pvlan", "1"},
		{"net/ipv4/conf/" + name + "/send_redirects", "0"},
	} {
		if err := writeSysctl(s[0], s[1]); err != nil {
			return err
		}
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("bringing bridge %s up: %w", name, err)
	}
	return nil
}

// attachPort puts link on bridge as an isolated port and brings it up.
func attachPort(link netlink.Link, bridge string) error {
	br, err := netlink.LinkByName(bridge)
	if err != nil {
		return fmt.Errorf("finding bridge %s: %w", bridge, err)
	}
	if link.Attrs().MasterIndex != br.Attrs().Index {
		if err := netlink.LinkSetMaster(link, br); err != nil {
			return fmt.Errorf("attaching %s to %s: %w", link.Attrs().Name, bridge, err)
		}
	}
	if err := netlink.LinkSetIsolated(link, true); err != nil {
		return fmt.Errorf("isolating bridge port %s: %w", link.Attrs().Name, err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("bringing %s up: %w", link.Attrs().Name, err)
	}
	return nil
}

// ensureTap creates a persistent, single-queue tap owned by root and makes
// it an isolated port of bridge. Call it inside the VPC namespace, where
// QEMU will later open it by name.
func ensureTap(name, bridge string) error {
	link, err := netlink.LinkByName(name)
	if err != nil {
		tap := &netlink.Tuntap{
			LinkAttrs: netlink.LinkAttrs{Name: name, MTU: 1500},
			Mode:      netlink.TUNTAP_MODE_TAP,
			Flags:     netlink.TUNTAP_NO_PI | netlink.TUNTAP_VNET_HDR,
			Owner:     0,
			Group:     0,
		}
		if err := netlink.LinkAdd(tap); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("creating tap %s: %w", name, err)
		}
		if link, err = netlink.LinkByName(name); err != nil {
			return fmt.Errorf("finding tap %s: %w", name, err)
		}
	}
	return attachPort(link, bridge)
}

// deleteLink removes an interface; a missing one is not an error.
func deleteLink(name string) error {
	link, err := netlink.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		return fmt.Errorf("finding %s: %w", name, err)
	}
	if err := netlink.LinkDel(link); err != nil {
		return fmt.Errorf("deleting %s: %w", name, err)
	}
	return nil
}

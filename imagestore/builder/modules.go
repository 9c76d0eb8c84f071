package builder

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// bootModules are loaded by the initramfs, in dependency order: the root
// volume and the NIC are virtio devices and the Debian cloud kernel builds
// virtio as modules. Their dependencies (virtio_ring, virtio,
// virtio_pci_*_dev, failover, net_failover) come from modules.dep.
// virtio_rng is here too: with a virtio-rng device the kernel's random
// pool is ready at once, instead of seconds later under TCG, and the first
// boot's ssh host key generation does not wait for it.
var bootModules = []string{"virtio_pci", "virtio_net", "virtio_blk", "virtio_rng"}

// extraModules are copied to the root volume for modprobe: devices labcloud
// may attach (rng, balloon, console, SCSI, CD-ROM), the ACPI power button
// and its input device (busybox acpid), and a few a networking lab uses.
var extraModules = []string{
	"virtio_balloon", "virtio_console", "virtio_input", "virtio_scsi",
	"sd_mod", "sr_mod", "isofs",
	"button", "evdev",
	"tun", "veth", "bridge", "8021q", "vxlan", "overlay",
}

// moduleDB is a kernel's modules.dep.
type moduleDB struct {
	dir     string              // lib/modules/<version> on the host
	path    map[string]string   // module name -> path relative to dir
	deps    map[string][]string // module name -> all its dependencies
	builtin map[string]bool
}

// modName turns "kernel/drivers/virtio/virtio-foo.ko" into "virtio_foo".
func modName(p string) string {
	base := filepath.Base(p)
	if i := strings.Index(base, ".ko"); i >= 0 {
		base = base[:i]
	}
	return strings.ReplaceAll(base, "-", "_")
}

// loadModules reads the kernel's modules.dep, running depmod on the
// unpacked package first (Debian generates modules.dep at install time).
func loadModules(ctx context.Context, kernelRoot, kver string) (*moduleDB, error) {
	dir := filepath.Join(kernelRoot, "lib", "modules", kver)
	if _, err := os.Stat(filepath.Join(dir, "modules.dep")); err != nil {
		if _, err := run(ctx, "", "depmod", "-b", kernelRoot, kver); err != nil {
			return nil, fmt.Errorf("generating modules.dep for %s: %w", kver, err)
		}
	}
	f, err := os.Open(filepath.Join(dir, "modules.dep"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	db, err := parseModulesDep(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.Name(), err)
	}
	db.dir = dir
	if b, err := os.ReadFile(filepath.Join(dir, "modules.builtin")); err == nil {
		for _, line := range strings.Fields(string(b)) {
			db.builtin[modName(line)] = true
		}
	}
	return db, nil
}

func parseModulesDep(r io.Reader) (*moduleDB, error) {
	db := &moduleDB{path: map[string]string{}, deps: map[string][]string{}, builtin: map[string]bool{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		mod, deps, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		name := modName(mod)
		db.path[name] = mod
		for _, d := range strings.Fields(deps) {
			db.deps[name] = append(db.deps[name], modName(d))
			if _, ok := db.path[modName(d)]; !ok {
				db.path[modName(d)] = d
			}
		}
	}
	return db, sc.Err()
}

// loadOrder returns the module files (relative to lib/modules/<version>)
// to insmod so that every module comes after its dependencies. Built-in
// modules are skipped; an unknown module is an error.
func (db *moduleDB) loadOrder(names []string) ([]string, error) {
	var order []string
	done := map[string]bool{}
	var visit func(name string, stack []string) error
	visit = func(name string, stack []string) error {
		if done[name] {
			return nil
		}
		if slices.Contains(stack, name) {
			return fmt.Errorf("module dependency cycle: %s", strings.Join(append(stack, name), " -> "))
		}
		p, ok := db.path[name]
		if !ok {
			if db.builtin[name] {
				done[name] = true
				return nil
			}
			return fmt.Errorf("kernel module %s is neither in modules.dep nor built in", name)
		}
		// modules.dep lists the deepest dependencies last, as modprobe
		// loads them from the end.
		deps := db.deps[name]
		for i := len(deps) - 1; i >= 0; i-- {
			if err := visit(deps[i], append(stack, name)); err != nil {
				return err
			}
		}
		done[name] = true
		order = append(order, p)
		return nil
	}
	for _, n := range names {
		if err := visit(strings.ReplaceAll(n, "-", "_"), nil); err != nil {
			return nil, err
		}
	}
	return order, nil
}

package builder

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labcloud/labcloud/internal/errdefs"
)

// debCache keeps .deb files (debs/) and their unpacked trees (unpacked/)
// under dir. Entries are complete or absent: downloads and unpacking
// happen in a temporary directory and are renamed into place.
type debCache struct {
	dir string
}

// debPkg is one Debian package in the cache.
type debPkg struct {
	Name, Version, Arch string
	// Filename is the pool file name apt gives (epoch colon as %3a).
	Filename string
	SHA256   string
	Size     int64
	// Deb is the cached .deb, Root the directory it is unpacked in.
	Deb  string `json:"-"`
	Root string `json:"-"`
}

// aptListsDir is where apt keeps the package lists `apt-get update` writes.
const aptListsDir = "/var/lib/apt/lists"

// resolution is what apt said the packages are, saved as resolved.json so
// that a rebuild needs no apt query (about a second each) while apt's lists
// have not changed.
type resolution struct {
	Meta       string    `json:"meta"`
	Names      []string  `json:"names"`
	ListsStamp time.Time `json:"listsStamp"`
	Kernel     string    `json:"kernel"`
	Packages   []*debPkg `json:"packages"`
}

// listsStamp is the newest modification time in apt's lists directory.
func listsStamp() (time.Time, error) {
	entries, err := os.ReadDir(aptListsDir)
	if err != nil {
		return time.Time{}, err
	}
	fi, err := os.Stat(aptListsDir)
	if err != nil {
		return time.Time{}, err
	}
	newest := fi.ModTime()
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			return time.Time{}, err
		}
		if info.ModTime().After(newest) {
			newest = info.ModTime()
		}
	}
	return newest, nil
}

// resolve finds the versioned package meta depends on (whose name starts
// with kernelPrefix: linux-image-cloud-amd64 -> linux-image-6.1.0-56-cloud-amd64)
// and the candidate .deb of it and of each of names, in that order.
func (c *debCache) resolve(ctx context.Context, meta, kernelPrefix string, names []string) (string, []*debPkg, error) {
	stamp, stampErr := listsStamp()
	saved := filepath.Join(c.dir, "resolved.json")
	if stampErr == nil {
		var r resolution
		if b, err := os.ReadFile(saved); err == nil && json.Unmarshal(b, &r) == nil &&
			r.Meta == meta && slices.Equal(r.Names, names) && r.ListsStamp.Equal(stamp) && len(r.Packages) == len(names)+1 {
			return r.Kernel, r.Packages, nil
		}
	}
	kernel, err := c.resolveDepends(ctx, meta, kernelPrefix)
	if err != nil {
		return "", nil, err
	}
	all := append([]string{kernel}, names...)
	tmp, err := c.tempDir()
	if err != nil {
		return "", nil, err
	}
	defer os.RemoveAll(tmp)
	// --print-uris answers from the package lists, without network; run
	// it in an empty directory, since apt leaves out files already there.
	out, err := run(ctx, tmp, "apt-get", append([]string{"download", "--print-uris"}, all...)...)
	if err != nil {
		return "", nil, errdefs.Wrap(errdefs.ClassUnavailable, "", err,
			"apt cannot find the packages of %s (%s): run `apt-get update` (make deps does)", TinyName, strings.Join(all, " "))
	}
	found, err := parsePrintURIs(out)
	if err != nil {
		return "", nil, err
	}
	byName := map[string]*debPkg{}
	for _, p := range found {
		byName[p.Name] = p
	}
	var pkgs []*debPkg
	for _, n := range all {
		p := byName[n]
		if p == nil {
			return "", nil, errdefs.New(errdefs.ClassUnavailable, "", "apt-get download --print-uris named no file for %s: run `apt-get update`", n)
		}
		pkgs = append(pkgs, p)
	}
	if stampErr == nil {
		if b, err := json.Marshal(resolution{Meta: meta, Names: names, ListsStamp: stamp, Kernel: kernel, Packages: pkgs}); err == nil {
			if err := os.WriteFile(saved+".tmp", b, 0o644); err == nil {
				os.Rename(saved+".tmp", saved)
			}
		}
	}
	return kernel, pkgs, nil
}

// resolveDepends returns the dependency of meta whose name starts with
// prefix.
func (c *debCache) resolveDepends(ctx context.Context, meta, prefix string) (string, error) {
	out, err := run(ctx, "", "apt-cache", "depends", "--no-recommends", "--no-suggests",
		"--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances", meta)
	if err != nil {
		return "", errdefs.Wrap(errdefs.ClassUnavailable, "", err,
			"apt does not know %s: run `apt-get update` (make deps does)", meta)
	}
	for _, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		dep, ok := strings.CutPrefix(line, "Depends: ")
		if ok && strings.HasPrefix(dep, prefix) {
			return strings.Trim(dep, "<>"), nil
		}
	}
	return "", errdefs.New(errdefs.ClassUnavailable, "",
		"%s depends on no %s* package according to apt-cache: run `apt-get update`", meta, prefix)
}

func (c *debCache) tempDir() (string, error) {
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return "", fmt.Errorf("creating package cache %s: %w", c.dir, err)
	}
	return os.MkdirTemp(c.dir, ".tmp-")
}

// fetch makes sure the packages are downloaded (sha256 checked) and
// unpacked, and sets their Deb and Root.
func (c *debCache) fetch(ctx context.Context, ordered []*debPkg) error {
	debs := filepath.Join(c.dir, "debs")
	unpacked := filepath.Join(c.dir, "unpacked")
	for _, d := range []string{debs, unpacked} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("creating package cache %s: %w", d, err)
		}
	}
	tmp, err := c.tempDir()
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	var missing []string
	for _, p := range ordered {
		p.Deb = filepath.Join(debs, p.Filename)
		if sum, _, err := fileSHA256(p.Deb); err == nil && sum == p.SHA256 {
			continue
		}
		missing = append(missing, p.Name+"="+p.Version)
	}

	if len(missing) > 0 {
		args := []string{"download"}
		if os.Geteuid() == 0 {
			// apt's _apt sandbox user cannot write to a root-only cache.
			args = append(args, "-o", "APT::Sandbox::User=root")
		}
		if _, err := run(ctx, tmp, "apt-get", append(args, missing...)...); err != nil {
			return errdefs.Wrap(errdefs.ClassUnavailable, "", err, "downloading %s", strings.Join(missing, " "))
		}
		for _, p := range ordered {
			src := filepath.Join(tmp, p.Filename)
			if _, err := os.Stat(src); err != nil {
				continue
			}
			sum, _, err := fileSHA256(src)
			if err != nil {
				return err
			}
			if sum != p.SHA256 {
				return errdefs.New(errdefs.ClassUnavailable, "",
					"%s: downloaded sha256 %s, apt's lists say %s: run `apt-get update` and build again", p.Filename, sum, p.SHA256)
			}
			if err := os.Rename(src, p.Deb); err != nil {
				return err
			}
		}
	}

	for _, p := range ordered {
		p.Root = filepath.Join(unpacked, strings.TrimSuffix(p.Filename, ".deb"))
		if fi, err := os.Stat(p.Root); err == nil && fi.IsDir() {
			continue
		}
		dst, err := os.MkdirTemp(tmp, "x-")
		if err != nil {
			return err
		}
		if _, err := run(ctx, "", "dpkg-deb", "-x", p.Deb, dst); err != nil {
			return fmt.Errorf("unpacking %s: %w", p.Filename, err)
		}
		if err := os.Rename(dst, p.Root); err != nil && !os.IsExist(err) {
			if fi, serr := os.Stat(p.Root); serr != nil || !fi.IsDir() {
				return fmt.Errorf("caching %s: %w", p.Filename, err)
			}
		}
	}
	c.prune(ordered)
	return nil
}

// prune removes cached versions of the packages other than the ones just
// used, so that Debian updates do not pile up old kernels. Other packages'
// entries are left alone.
func (c *debCache) prune(used []*debPkg) {
	keep := map[string]bool{}
	names := map[string]bool{}
	for _, p := range used {
		keep[p.Filename] = true
		keep[strings.TrimSuffix(p.Filename, ".deb")] = true
		names[p.Name] = true
	}
	for _, sub := range []string{"debs", "unpacked"} {
		entries, err := os.ReadDir(filepath.Join(c.dir, sub))
		if err != nil {
			continue
		}
		for _, e := range entries {
			name, _, ok := strings.Cut(e.Name(), "_")
			if !ok || keep[e.Name()] || !names[name] {
				continue
			}
			os.RemoveAll(filepath.Join(c.dir, sub, e.Name()))
		}
	}
}

// parsePrintURIs reads `apt-get download --print-uris` lines:
//
//	'http://…/busybox-static_1%3a1.35.0-4_amd64.deb' busybox-static_1%3a1.35.0-4_amd64.deb 928188 SHA256:ab…
func parsePrintURIs(out []byte) ([]*debPkg, error) {
	var pkgs []*debPkg
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "'") {
			continue
		}
		filename := f[1]
		size, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("apt-get --print-uris: bad size in %q", sc.Text())
		}
		sum, ok := strings.CutPrefix(f[3], "SHA256:")
		if !ok {
			return nil, fmt.Errorf("apt-get --print-uris: no SHA256 in %q", sc.Text())
		}
		base, ok := strings.CutSuffix(filename, ".deb")
		parts := strings.Split(base, "_")
		if !ok || len(parts) != 3 {
			return nil, fmt.Errorf("apt-get --print-uris: unexpected file name %q", filename)
		}
		version, err := url.PathUnescape(parts[1])
		if err != nil {
			return nil, fmt.Errorf("apt-get --print-uris: bad version in %q: %w", filename, err)
		}
		pkgs = append(pkgs, &debPkg{Name: parts[0], Version: version, Arch: parts[2], Filename: filename, SHA256: sum, Size: size})
	}
	return pkgs, sc.Err()
}

package builder

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
)

// makeExt4 makes raw, a sizeMiB ext4 image holding the tree in dir, without
// mounting anything (mkfs.ext4 -d). mkfs copies each file's owner from the
// tree, which is the builder's own user; debugfs then gives every file to
// root, except the paths in owners, so the image is the same whoever builds
// it.
func makeExt4(ctx context.Context, dir, raw string, sizeMiB int, owners map[string][2]int) error {
	f, err := os.Create(raw)
	if err != nil {
		return err
	}
	if err := f.Truncate(int64(sizeMiB) << 20); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if _, err := run(ctx, "", "mkfs.ext4", "-q", "-F", "-L", tinyFSLabel, "-m", "1",
		"-E", "root_owner=0:0", "-d", dir, raw); err != nil {
		return fmt.Errorf("making the ext4 file system: %w", err)
	}
	cmds, err := ownerCommands(dir, owners)
	if err != nil {
		return err
	}
	if len(cmds) == 0 {
		return nil
	}
	if err := debugfsWrite(ctx, raw, cmds); err != nil {
		return fmt.Errorf("setting file owners in the image: %w", err)
	}
	return nil
}

// debugfsWrite runs debugfs requests against an ext4 image, failing on the
// first request debugfs could not do.
func debugfsWrite(ctx context.Context, img string, cmds []string) error {
	cmdFile := img + ".debugfs"
	if err := os.WriteFile(cmdFile, []byte(strings.Join(cmds, "\n")+"\n"), 0o600); err != nil {
		return err
	}
	defer os.Remove(cmdFile)
	_, stderr, err := run2(ctx, "", "debugfs", "-w", "-f", cmdFile, img)
	if err != nil {
		return err
	}
	// debugfs reports a failed request on stderr and still exits 0; the
	// only other line there is its version.
	for _, line := range strings.Split(strings.TrimSpace(string(stderr)), "\n") {
		if line != "" && !strings.HasPrefix(line, "debugfs ") {
			return fmt.Errorf("debugfs: %s", line)
		}
	}
	return nil
}

// ownerCommands returns the debugfs requests that give the files of dir
// their owners in the image: owners[path] (inherited by everything below
// path), root for the rest. Files already owned right need none.
func ownerCommands(dir string, owners map[string][2]int) ([]string, error) {
	var prefixes []string
	for p := range owners {
		prefixes = append(prefixes, p)
	}
	// Longest prefix first, so a deeper owner wins.
	sort.Slice(prefixes, func(i, j int) bool { return len(prefixes[i]) > len(prefixes[j]) })
	var cmds []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		img := "/" + filepath.ToSlash(rel)
		if rel == "." {
			return nil // mkfs -E root_owner
		}
		want := [2]int{0, 0}
		for _, pre := range prefixes {
			if img == pre || strings.HasPrefix(img, pre+"/") {
				want = owners[pre]
				break
			}
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if ok && int(st.Uid) == want[0] && int(st.Gid) == want[1] {
			return nil
		}
		if strings.ContainsAny(img, " \t\n\"") {
			return fmt.Errorf("image path %q has a character debugfs cannot take", img)
		}
		cmds = append(cmds,
			fmt.Sprintf("sif %s uid %d", img, want[0]),
			fmt.Sprintf("sif %s gid %d", img, want[1]))
		return nil
	})
	return cmds, err
}

// toQcow2 converts the raw image; zero blocks take no space in the qcow2.
func toQcow2(ctx context.Context, raw, out string) error {
	if _, err := run(ctx, "", "qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, out); err != nil {
		return fmt.Errorf("converting the image to qcow2: %w", err)
	}
	return nil
}

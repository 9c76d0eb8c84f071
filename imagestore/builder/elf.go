package builder

import (
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// libDirs are where Debian (multiarch, before the /usr merge of packages)
// puts shared libraries; the dynamic loader searches them by default.
var libDirs = []string{"lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu", "lib", "usr/lib"}

// sharedLib is a library an image needs: where it goes in the image
// (relative path) and the host file to copy.
type sharedLib struct {
	Guest, Host string
}

// libClosure finds, in the unpacked package trees roots, every shared
// library the ELF files need (DT_NEEDED, recursively) and the program
// interpreter. It reads the ELF headers itself rather than running ldd, so
// the host needs none of the libraries. A library found in no root is an
// error that names it and the program that needs it.
func libClosure(files []string, roots []string) (libs []sharedLib, interp sharedLib, err error) {
	found := map[string]sharedLib{}
	queue := append([]string(nil), files...)
	for len(queue) > 0 {
		file := queue[0]
		queue = queue[1:]
		needed, in, err := elfDeps(file)
		if err != nil {
			return nil, sharedLib{}, err
		}
		if in != "" && interp.Guest == "" {
			// The interpreter is named by absolute path (/lib64/ld-linux…);
			// the file itself lives with libc.
			interp.Guest = strings.TrimPrefix(in, "/")
			lib, err := findLib(filepath.Base(in), roots)
			if err != nil {
				return nil, sharedLib{}, fmt.Errorf("%s needs the program interpreter %s: %w", file, in, err)
			}
			interp.Host = lib.Host
			found[filepath.Base(in)] = lib
		}
		for _, soname := range needed {
			if _, ok := found[soname]; ok {
				continue
			}
			lib, err := findLib(soname, roots)
			if err != nil {
				return nil, sharedLib{}, fmt.Errorf("%s needs %s: %w", file, soname, err)
			}
			found[soname] = lib
			queue = append(queue, lib.Host)
		}
	}
	for _, l := range found {
		libs = append(libs, l)
	}
	sort.Slice(libs, func(i, j int) bool { return libs[i].Guest < libs[j].Guest })
	return libs, interp, nil
}

func elfDeps(path string) (needed []string, interp string, err error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, "", fmt.Errorf("reading ELF %s: %w", path, err)
	}
	defer f.Close()
	if f.Machine != elf.EM_X86_64 {
		return nil, "", fmt.Errorf("%s is %s, not x86_64", path, f.Machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			b := make([]byte, p.Filesz)
			if _, err := p.ReadAt(b, 0); err != nil {
				return nil, "", fmt.Errorf("reading the interpreter of %s: %w", path, err)
			}
			interp = strings.TrimRight(string(b), "\x00")
		}
	}
	needed, err = f.ImportedLibraries()
	if err != nil && !errors.Is(err, elf.ErrNoSymbols) {
		return nil, "", fmt.Errorf("reading the libraries of %s: %w", path, err)
	}
	return needed, interp, nil
}

func findLib(soname string, roots []string) (sharedLib, error) {
	for _, dir := range libDirs {
		for _, root := range roots {
			rel := filepath.Join(dir, soname)
			host, err := resolveIn(root, rel)
			if err == nil {
				return sharedLib{Guest: rel, Host: host}, nil
			}
		}
	}
	return sharedLib{}, fmt.Errorf("%s is in none of the image's packages (add the package that ships it to tinyPackages)", soname)
}

// resolveIn follows symlinks of rel inside root (absolute targets are
// taken relative to root, as they would be in the image) and returns the
// host path of the regular file.
func resolveIn(root, rel string) (string, error) {
	for range 16 {
		p := filepath.Join(root, rel)
		fi, err := os.Lstat(p)
		if err != nil {
			return "", err
		}
		if fi.Mode().IsRegular() {
			return p, nil
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			return "", fmt.Errorf("%s is not a regular file", p)
		}
		target, err := os.Readlink(p)
		if err != nil {
			return "", err
		}
		if filepath.IsAbs(target) {
			rel = strings.TrimPrefix(target, "/")
		} else {
			rel = filepath.Join(filepath.Dir(rel), target)
		}
	}
	return "", fmt.Errorf("too many symlinks at %s in %s", rel, root)
}

package builder

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/labcloud/labcloud/internal/errdefs"
)

// Tool is a host program the builder runs and the Debian package that
// provides it.
type Tool struct{ Name, Package string }

// BuildTools are the host programs BuildTiny runs.
var BuildTools = []Tool{
	{"apt-get", "apt"},
	{"apt-cache", "apt"},
	{"dpkg-deb", "dpkg"},
	{"depmod", "kmod"},
	{"mkfs.ext4", "e2fsprogs"},
	{"debugfs", "e2fsprogs"},
	{"qemu-img", "qemu-utils"},
}

// sbinDirs are searched after PATH: a non-root PATH often lacks them.
var sbinDirs = []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin"}

// LookTool finds a host program in PATH or the sbin directories.
func LookTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range sbinDirs {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found in PATH or %s", name, strings.Join(sbinDirs, ":"))
}

// CheckTools reports every missing tool at once, with the packages that
// bring them.
func CheckTools(tools ...Tool) error {
	if len(tools) == 0 {
		tools = BuildTools
	}
	var missing, pkgs []string
	seen := map[string]bool{}
	for _, t := range tools {
		if _, err := LookTool(t.Name); err != nil {
			missing = append(missing, t.Name)
			if !seen[t.Package] {
				seen[t.Package] = true
				pkgs = append(pkgs, t.Package)
			}
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return errdefs.New(errdefs.ClassUnavailable, "",
		"missing host tools: %s (Debian packages: %s); run `make deps` (or apt-get install %s)",
		strings.Join(missing, ", "), strings.Join(pkgs, " "), strings.Join(pkgs, " "))
}

// run runs a host tool and returns its stdout; the error carries stderr.
func run(ctx context.Context, dir string, name string, args ...string) ([]byte, error) {
	stdout, _, err := run2(ctx, dir, name, args...)
	return stdout, err
}

// run2 is run that also returns stderr, for tools that report failures
// there and still exit 0 (debugfs).
func run2(ctx context.Context, dir string, name string, args ...string) ([]byte, []byte, error) {
	path, err := LookTool(name)
	if err != nil {
		return nil, nil, err
	}
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "DEBIAN_FRONTEND=noninteractive")
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 2000 {
			msg = msg[len(msg)-2000:]
		}
		return stdout.Bytes(), stderr.Bytes(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, msg)
	}
	return stdout.Bytes(), stderr.Bytes(), nil
}

package imagestore_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/labcloud/labcloud/imagestore"
	"github.com/labcloud/labcloud/imagestore/builder"
	"github.com/labcloud/labcloud/internal/errdefs"
	"github.com/labcloud/labcloud/internal/store/storetest"
)

func newCatalogue(t *testing.T) *imagestore.Catalogue {
	t.Helper()
	return imagestore.New(storetest.NewEmbedded(t), filepath.Join(t.TempDir(), "images"))
}

func needQemuImg(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Fatal("qemu-img not found: run `make deps` (qemu-utils)")
	}
}

func code(err error) string {
	if e, ok := err.(*errdefs.Error); ok {
		return e.Code
	}
	return fmt.Sprint(err)
}

// fakeBuild writes the files and manifest.json of a (tiny, fake) builder
// output and returns the manifest path.
func fakeBuild(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("qemu-img", "create", "-f", "qcow2", filepath.Join(dir, builder.DiskFileName), "1G").CombinedOutput()
	if err != nil {
		t.Fatalf("qemu-img create: %v: %s", err, out)
	}
	os.WriteFile(filepath.Join(dir, builder.KernelFileName), []byte("kernel"), 0o644)
	os.WriteFile(filepath.Join(dir, builder.InitrdFileName), []byte("initrd"), 0o644)
	m := builder.Manifest{Name: builder.TinyName, Description: "tiny test image", Architecture: "x86_64",
		KernelCmdline: builder.TinyKernelCmdline, RootVolumeSizeGiB: 1}
	for _, f := range []struct{ name, role string }{{builder.DiskFileName, "root-volume"}, {builder.KernelFileName, "kernel"}, {builder.InitrdFileName, "initrd"}} {
		data, err := os.ReadFile(filepath.Join(dir, f.name))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		m.Files = append(m.Files, builder.ManifestFile{Name: f.name, Role: f.role, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])})
	}
	data, _ := json.Marshal(m)
	p := filepath.Join(dir, builder.ManifestFileName)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestImageRegisterFromManifest(t *testing.T) {
	needQemuImg(t)
	c := newCatalogue(t)
	ctx := context.Background()
	manifest := fakeBuild(t)
	im, err := c.Register(ctx, imagestore.RegisterInput{OwnerID: "111111111111", OwnerAlias: "labcloud", Name: "labcloud-tiny",
		Location: "file://" + manifest, Public: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(im.ID) != 21 || imagestore.ValidateID(im.ID) != nil || im.State != "available" || im.Description != "tiny test image" ||
		im.RootVolumeSize() != 1 || im.KernelCmdline != builder.TinyKernelCmdline || im.Hypervisor != "xen" || im.RootDeviceName != "/dev/xvda" {
		t.Fatalf("image %+v", im)
	}
	for _, f := range []string{im.Disk, im.Kernel, im.Initrd} {
		if filepath.Dir(f) != filepath.Join(c.Dir(), im.ID) {
			t.Fatalf("%s is not in the image's directory", f)
		}
		st, err := os.Stat(f)
		if err != nil || st.Mode().Perm() != 0o444 {
			t.Fatalf("%s: %v, mode %v; want read-only", f, err, st.Mode())
		}
	}
	// Public: visible to another account.
	got, err := c.Get(ctx, "222222222222", im.ID)
	if err != nil || got.ID != im.ID || got.Disk != im.Disk {
		t.Fatalf("Get by another account = %+v, %v", got, err)
	}
	if _, err := c.Register(ctx, imagestore.RegisterInput{OwnerID: "111111111111", Name: "labcloud-tiny", Location: "file://" + manifest}); code(err) != "InvalidAMIName.Duplicate" {
		t.Fatalf("same name again: %v", err)
	}
	if _, err := c.Deregister(ctx, "222222222222", im.ID); code(err) != "AuthFailure" {
		t.Fatalf("deregister by a non-owner: %v", err)
	}
	if _, err := c.Deregister(ctx, "111111111111", im.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, "111111111111", im.ID); code(err) != "InvalidAMIID.NotFound" {
		t.Fatalf("Get after deregister: %v", err)
	}
	if _, err := os.Stat(im.Disk); err != nil {
		t.Fatalf("deregistering removed the base file running instances use: %v", err)
	}
	// The name is free again.
	if _, err := c.Register(ctx, imagestore.RegisterInput{OwnerID: "111111111111", Name: "labcloud-tiny", Location: "file://" + manifest}); err != nil {
		t.Fatal(err)
	}
}

func TestImageRegisterDisks(t *testing.T) {
	needQemuImg(t)
	c := newCatalogue(t)
	ctx := context.Background()
	dir := t.TempDir()
	raw := filepath.Join(dir, "disk.raw")
	if err := os.WriteFile(raw, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(raw, 3<<30+512); err != nil {
		t.Fatal(err)
	}
	im, err := c.Register(ctx, imagestore.RegisterInput{OwnerID: "1", Name: "raw one", Location: raw}) // a bare path works too
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("qemu-img", "info", "--output=json", im.Disk).Output()
	if err != nil || !strings.Contains(string(out), `"format": "qcow2"`) {
		t.Fatalf("raw was not converted to qcow2: %v %s", err, out)
	}
	if im.RootVolumeSize() != 4 || im.Public || im.Kernel != "" {
		t.Fatalf("image %+v (size %d)", im, im.RootVolumeSize())
	}
	// Private: another account does not see it.
	if _, err := c.Get(ctx, "2", im.ID); code(err) != "InvalidAMIID.NotFound" {
		t.Fatalf("private image visible to another account: %v", err)
	}
}

func TestImageRegisterRefuses(t *testing.T) {
	c := newCatalogue(t)
	ctx := context.Background()
	tests := []struct{ name, imageName, location, code string }{
		{"short name", "ab", "file:///etc/hostname", "InvalidAMIName.Malformed"},
		{"bad char", "a*b", "file:///etc/hostname", "InvalidAMIName.Malformed"},
		{"http location", "good", "http://example.com/x.qcow2", "InvalidParameterValue"},
		{"relative", "good", "file://x.qcow2", "InvalidParameterValue"},
		{"relative path", "good", "x.qcow2", "InvalidParameterValue"},
		{"file contents", "good", "{\n \"name\": \"labcloud-tiny\"}", "InvalidParameterValue"},
		{"missing file", "good", "file:///nonexistent/disk.qcow2", "InvalidParameterValue"},
		{"not an image", "good", "file:///etc/hostname", "InvalidParameterValue"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := c.Register(ctx, imagestore.RegisterInput{OwnerID: "1", Name: tt.imageName, Location: tt.location}); code(err) != tt.code {
				t.Fatalf("Register: %v; want %s", err, tt.code)
			}
		})
	}
}

func TestImageGetIDForms(t *testing.T) {
	c := newCatalogue(t)
	ctx := context.Background()
	tests := []struct{ name, id, code string }{
		{"short form", "ami-12345678", "InvalidAMIID.NotFound"},
		{"long form", "ami-0123456789abcdef0", "InvalidAMIID.NotFound"},
		{"no prefix", "12345678", "InvalidAMIID.Malformed"},
		{"upper case", "ami-ABCDEF12", "InvalidAMIID.Malformed"},
		{"wrong length", "ami-123", "InvalidAMIID.Malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := c.Get(ctx, "1", tt.id); code(err) != tt.code {
				t.Fatalf("Get(%s): %v; want %s", tt.id, err, tt.code)
			}
		})
	}
}

package imagestore

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/labcloud/labcloud/imagestore/builder"
	"github.com/labcloud/labcloud/internal/errdefs"
	"github.com/labcloud/labcloud/internal/store"
)

// Image states, as EC2 names them.
const (
	StateAvailable    = "available"
	StatePending      = "pending"
	StateDeregistered = "deregistered"
)

// OwnerAlias is the ImageOwnerAlias of images the admin registers (AWS
// shows "amazon" for its own public AMIs).
const OwnerAlias = "labcloud"

// Image is an AMI: the EC2 attributes DescribeImages shows and the files an
// instance boots from.
type Image struct {
	ID                  string    `json:"id"`
	OwnerID             string    `json:"ownerId"`
	OwnerAlias          string    `json:"ownerAlias,omitempty"`
	Name                string    `json:"name"`
	Description         string    `json:"description,omitempty"`
	Location            string    `json:"location"`
	Architecture        string    `json:"architecture"`
	State               string    `json:"state"`
	Public              bool      `json:"public"`
	RootDeviceName      string    `json:"rootDeviceName"`
	RootDeviceType      string    `json:"rootDeviceType"`
	BlockDeviceMappings []Mapping `json:"blockDeviceMappings"`
	VirtualizationType  string    `json:"virtualizationType"`
	Hypervisor          string    `json:"hypervisor"`
	ImageType           string    `json:"imageType"`
	CreationDate        time.Time `json:"creationDate"`
	EnaSupport          bool      `json:"enaSupport"`
	LaunchAccountIDs    []string  `json:"launchAccountIds,omitempty"`

	// Disk is the read-only qcow2 base file of the root volume, under
	// <images dir>/<ami-id>/; instances use it as a backing file.
	Disk string `json:"disk"`
	// Kernel, Initrd and KernelCmdline are for QEMU direct kernel boot;
	// empty for a plain disk image that boots with its own loader.
	Kernel        string `json:"kernel,omitempty"`
	Initrd        string `json:"initrd,omitempty"`
	KernelCmdline string `json:"kernelCmdline,omitempty"`
}

// Mapping is a block device mapping of the image.
type Mapping struct {
	DeviceName string `json:"deviceName"`
	Ebs        *Ebs   `json:"ebs,omitempty"`
}

// Ebs describes the EBS volume an instance gets for a mapping.
type Ebs struct {
	VolumeSize          int    `json:"volumeSize"` // GiB
	VolumeType          string `json:"volumeType"`
	DeleteOnTermination bool   `json:"deleteOnTermination"`
	SnapshotID          string `json:"snapshotId"`
	Encrypted           bool   `json:"encrypted"`
}

// RootVolumeSize is the size in GiB of the root volume's mapping.
func (im Image) RootVolumeSize() int {
	for _, m := range im.BlockDeviceMappings {
		if m.DeviceName == im.RootDeviceName && m.Ebs != nil {
			return m.Ebs.VolumeSize
		}
	}
	return 0
}

// VisibleTo reports whether account may see and launch the image: its
// owner, anyone for a public image, or an account given launch permission.
func (im Image) VisibleTo(account string) bool {
	if im.OwnerID == account || im.Public {
		return true
	}
	for _, a := range im.LaunchAccountIDs {
		if a == account {
			return true
		}
	}
	return false
}

// Catalogue is the AMI catalogue: records in state under images/<ami-id>
// (with images-by-name/<owner>/<name> keeping names unique per owner) and
// the files under the images directory.
//
// Deregistering removes the record and the name at once; the files stay
// until a later garbage collection so that instances still running from
// the image (whose volumes are overlays on Disk) are unaffected.
type Catalogue struct {
	st  *store.Store
	dir string
	now func() time.Time
}

// New returns a Catalogue over st keeping files under dir (normally
// <state-dir>/images).
func New(st *store.Store, dir string) *Catalogue {
	return &Catalogue{st: st, dir: dir, now: time.Now}
}

// Dir is the directory that holds the images' files.
func (c *Catalogue) Dir() string { return c.dir }

var idRE = regexp.MustCompile(`^ami-([0-9a-f]{8}|[0-9a-f]{17})$`)

// ValidateID checks the form of an AMI id: ami- and 8 or 17 hex digits.
func ValidateID(id string) error {
	if !idRE.MatchString(id) {
		return errdefs.InvalidParameter("InvalidAMIID.Malformed", "Invalid id: \"%s\" (expecting \"ami-...\" with 8 or 17 lower-case hex digits)", id)
	}
	return nil
}

var nameRE = regexp.MustCompile(`^[a-zA-Z0-9().\-/_ ]{3,128}$`)

// ValidateName checks an AMI name as AWS does: 3–128 characters of
// letters, digits, ( ) . - / _ and space.
func ValidateName(name string) error {
	if !nameRE.MatchString(name) {
		return errdefs.InvalidParameter("InvalidAMIName.Malformed",
			"AMI name '%s' is invalid: use 3 to 128 characters among letters, digits, spaces and ( ) . - / _", name)
	}
	return nil
}

func newID() string {
	var b [9]byte
	_, _ = rand.Read(b[:])
	return "ami-" + hex.EncodeToString(b[:])[:17]
}

func imageKey(id string) string         { return "images/" + id }
func nameKey(owner, name string) string { return "images-by-name/" + owner + "/" + name }

// RegisterInput says what to register.
type RegisterInput struct {
	OwnerID     string
	OwnerAlias  string
	Name        string
	Description string
	// Location is file:///abs/path/manifest.json (a builder manifest) or
	// file:///abs/path/disk.qcow2 (or a raw disk image, converted to
	// qcow2), on the lab server; the bare absolute path works too.
	Location string
	Public   bool
}

// Register copies the image's files into the images directory, read-only,
// and adds it to the catalogue, available at once.
func (c *Catalogue) Register(ctx context.Context, in RegisterInput) (im Image, err error) {
	if err := ValidateName(in.Name); err != nil {
		return Image{}, err
	}
	if len(in.Description) > 255 {
		return Image{}, errdefs.InvalidParameter("InvalidParameterValue", "The description is longer than 255 characters")
	}
	path, err := localPath(in.Location)
	if err != nil {
		return Image{}, err
	}
	if _, _, err := c.lookupName(ctx, in.OwnerID, in.Name); err == nil {
		return Image{}, errdefs.AlreadyExists("InvalidAMIName.Duplicate", "AMI name %s is already in use by AMI of account %s: choose another name or deregister that one", in.Name, in.OwnerID)
	}
	im = Image{
		ID: newID(), OwnerID: in.OwnerID, OwnerAlias: in.OwnerAlias, Name: in.Name, Description: in.Description,
		Location: in.Location, Architecture: "x86_64", State: StateAvailable, Public: in.Public,
		RootDeviceName: "/dev/xvda", RootDeviceType: "ebs", VirtualizationType: "hvm", Hypervisor: "xen",
		ImageType: "machine", CreationDate: c.now().UTC().Truncate(time.Millisecond), EnaSupport: true,
	}
	dir := filepath.Join(c.dir, im.ID)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Image{}, fmt.Errorf("creating %s: %w", dir, err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	var sizeGiB int
	if strings.HasSuffix(path, ".json") {
		sizeGiB, err = c.importManifest(ctx, path, dir, &im)
	} else {
		sizeGiB, err = importDisk(ctx, path, dir, &im)
	}
	if err != nil {
		return Image{}, err
	}
	im.BlockDeviceMappings = []Mapping{{DeviceName: im.RootDeviceName, Ebs: &Ebs{VolumeSize: sizeGiB, VolumeType: "gp3", DeleteOnTermination: true}}}
	_, err = c.st.Txn(ctx, store.OpCreate(nameKey(im.OwnerID, im.Name), im.ID), store.OpCreate(imageKey(im.ID), im))
	if errors.Is(err, store.ErrExists) {
		return Image{}, errdefs.AlreadyExists("InvalidAMIName.Duplicate", "AMI name %s is already in use by AMI of account %s: choose another name or deregister that one", in.Name, in.OwnerID)
	}
	if err != nil {
		return Image{}, fmt.Errorf("storing image %s: %w", im.ID, err)
	}
	return im, nil
}

// localPath turns file:///abs/path (or a bare /abs/path, which the aws CLI
// can send: it replaces a file:// parameter by the file's contents) into
// /abs/path.
func localPath(loc string) (string, error) {
	path := loc
	if !strings.HasPrefix(loc, "/") {
		u, err := url.Parse(loc)
		if err != nil || u.Scheme != "file" || (u.Host != "" && u.Host != "localhost") {
			path = ""
		} else {
			path = u.Path
		}
	}
	if len(loc) > 4096 || !filepath.IsAbs(path) {
		if len(loc) > 60 {
			loc = loc[:60] + "…"
		}
		return "", errdefs.InvalidParameter("InvalidParameterValue",
			"ImageLocation '%s' is not supported: give the absolute path on the lab server of a manifest.json (from labcloud image build) or of a qcow2/raw disk, "+
				"as /abs/path/manifest.json or file:///abs/path/manifest.json (the aws CLI reads file:// parameters itself: give it the bare path)", loc)
	}
	if _, err := os.Stat(path); err != nil {
		return "", errdefs.InvalidParameter("InvalidParameterValue", "ImageLocation %s cannot be read on the lab server: %v", loc, err)
	}
	return filepath.Clean(path), nil
}

func (c *Catalogue) importManifest(ctx context.Context, path, dir string, im *Image) (int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, errdefs.InvalidParameter("InvalidParameterValue", "reading manifest %s: %v", path, err)
	}
	var m builder.Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return 0, errdefs.InvalidParameter("InvalidParameterValue", "manifest %s is not a labcloud image manifest: %v", path, err)
	}
	if m.Architecture != "" && m.Architecture != "x86_64" {
		return 0, errdefs.InvalidParameter("InvalidParameterValue", "manifest %s is for architecture %s; labcloud runs x86_64 only", path, m.Architecture)
	}
	if im.Description == "" {
		im.Description = m.Description
	}
	im.KernelCmdline = m.KernelCmdline
	src := filepath.Dir(path)
	for _, f := range m.Files {
		var dst *string
		var name string
		switch f.Role {
		case "root-volume":
			dst, name = &im.Disk, builder.DiskFileName
		case "kernel":
			dst, name = &im.Kernel, builder.KernelFileName
		case "initrd":
			dst, name = &im.Initrd, builder.InitrdFileName
		default:
			continue
		}
		from := filepath.Join(src, filepath.Base(f.Name))
		to := filepath.Join(dir, name)
		if err := copyReadOnly(from, to, f.SHA256); err != nil {
			return 0, err
		}
		*dst = to
	}
	if im.Disk == "" {
		return 0, errdefs.InvalidParameter("InvalidParameterValue", "manifest %s names no root-volume file", path)
	}
	size := m.RootVolumeSizeGiB
	if size <= 0 {
		var err error
		if _, size, err = diskInfo(ctx, im.Disk); err != nil {
			return 0, err
		}
	}
	return size, nil
}

func importDisk(ctx context.Context, path, dir string, im *Image) (int, error) {
	format, size, err := diskInfo(ctx, path)
	if err != nil {
		return 0, err
	}
	to := filepath.Join(dir, builder.DiskFileName)
	switch format {
	case "qcow2":
		if err := copyReadOnly(path, to, ""); err != nil {
			return 0, err
		}
	case "raw":
		if st, err := os.Stat(path); err != nil || st.Size() < 1<<20 || st.Size()%512 != 0 {
			return 0, errdefs.InvalidParameter("InvalidParameterValue", "%s is not a disk image: a raw disk image is a whole number of 512-byte sectors and at least 1 MiB", path)
		}
		out, err := exec.CommandContext(ctx, "qemu-img", "convert", "-f", "raw", "-O", "qcow2", path, to).CombinedOutput()
		if err != nil {
			return 0, fmt.Errorf("converting %s to qcow2: %v: %s", path, err, out)
		}
		if err := os.Chmod(to, 0o444); err != nil {
			return 0, err
		}
	default:
		return 0, errdefs.InvalidParameter("InvalidParameterValue", "%s is a %s image; register a qcow2 or raw disk image", path, format)
	}
	im.Disk = to
	return size, nil
}

// diskInfo returns the format and the virtual size in GiB (rounded up) of
// a disk image, from qemu-img info.
func diskInfo(ctx context.Context, path string) (string, int, error) {
	out, err := exec.CommandContext(ctx, "qemu-img", "info", "--output=json", path).Output()
	if err != nil {
		return "", 0, errdefs.InvalidParameter("InvalidParameterValue", "%s is not a disk image qemu-img can read: %v", path, err)
	}
	var info struct {
		Format      string `json:"format"`
		VirtualSize int64  `json:"virtual-size"`
	}
	if err := json.Unmarshal(out, &info); err != nil {
		return "", 0, fmt.Errorf("parsing qemu-img info of %s: %w", path, err)
	}
	gib := int((info.VirtualSize + (1<<30 - 1)) >> 30)
	if gib < 1 {
		gib = 1
	}
	return info.Format, gib, nil
}

// copyReadOnly hard-links (or copies) from to to, checks the sha256 when
// given and makes the result read-only (0444).
func copyReadOnly(from, to, wantSHA string) error {
	_ = os.Remove(to)
	if err := os.Link(from, to); err != nil {
		if err := copyFile(from, to); err != nil {
			return fmt.Errorf("copying %s: %w", from, err)
		}
	}
	if wantSHA != "" {
		f, err := os.Open(to)
		if err != nil {
			return err
		}
		h := sha256.New()
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return err
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != wantSHA {
			return errdefs.InvalidParameter("InvalidParameterValue", "%s has sha256 %s but its manifest says %s: rebuild the image", from, got, wantSHA)
		}
	}
	return os.Chmod(to, 0o444)
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func (c *Catalogue) lookupName(ctx context.Context, owner, name string) (string, int64, error) {
	var id string
	rev, err := c.st.Get(ctx, nameKey(owner, name), &id)
	return id, rev, err
}

// Get returns an image the caller may see: InvalidAMIID.Malformed for an
// id of the wrong form, InvalidAMIID.NotFound when it does not exist or is
// not visible to callerAccount.
func (c *Catalogue) Get(ctx context.Context, callerAccount, amiID string) (Image, error) {
	if err := ValidateID(amiID); err != nil {
		return Image{}, err
	}
	var im Image
	_, err := c.st.Get(ctx, imageKey(amiID), &im)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !im.VisibleTo(callerAccount)) {
		return Image{}, errdefs.NotFound("InvalidAMIID.NotFound", "The image id '[%s]' does not exist", amiID)
	}
	if err != nil {
		return Image{}, fmt.Errorf("reading image %s: %w", amiID, err)
	}
	return im, nil
}

// Exists reports whether the image exists and is visible to the account
// (the tags resolver for "ami-").
func (c *Catalogue) Exists(ctx context.Context, acct, id string) (bool, error) {
	_, err := c.Get(ctx, acct, id)
	if errdefs.Is(err, errdefs.ClassNotFound) || errdefs.Is(err, errdefs.ClassInvalidParameter) {
		return false, nil
	}
	return err == nil, err
}

// List returns every image in the catalogue, visible or not, by id.
func (c *Catalogue) List(ctx context.Context) ([]Image, error) {
	ims, err := store.ListAs[Image](ctx, c.st, "images/")
	if err != nil {
		return nil, fmt.Errorf("listing images: %w", err)
	}
	return ims, nil
}

// Deregister removes an image the caller owns from the catalogue. Its
// files stay (see Catalogue).
func (c *Catalogue) Deregister(ctx context.Context, callerAccount, amiID string) (Image, error) {
	im, err := c.Get(ctx, callerAccount, amiID)
	if err != nil {
		return Image{}, err
	}
	if im.OwnerID != callerAccount {
		return Image{}, errdefs.New(errdefs.ClassAccessDenied, "AuthFailure", "Not authorized for image:%s: only its owner (%s) can deregister it", amiID, im.OwnerID)
	}
	var cur Image
	rev, err := c.st.Get(ctx, imageKey(amiID), &cur)
	if err != nil {
		return Image{}, fmt.Errorf("reading image %s: %w", amiID, err)
	}
	ops := []store.Op{store.OpDeleteIf(imageKey(amiID), rev)}
	if id, nrev, err := c.lookupName(ctx, im.OwnerID, im.Name); err == nil && id == amiID {
		ops = append(ops, store.OpDeleteIf(nameKey(im.OwnerID, im.Name), nrev))
	}
	if _, err := c.st.Txn(ctx, ops...); err != nil {
		if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
			return Image{}, errdefs.Conflict("IncorrectState", "image %s changed while it was being deregistered; retry", amiID)
		}
		return Image{}, fmt.Errorf("deregistering %s: %w", amiID, err)
	}
	im.State = StateDeregistered
	return im, nil
}

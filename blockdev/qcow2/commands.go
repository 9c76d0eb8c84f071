package qcow2

import (
	"encoding/json"
	"strconv"
	"strings"
)

// The qemu-img command lines the backend runs, each built by a pure
// function so that tests pin them down exactly (commands_test.go) and the
// process-running code stays trivial.

// secretID names the one secret object every command defines. Each
// encrypted chain (a volume and everything made from it) shares one key,
// so one secret opens every layer.
const secretID = "sec0"

// encryptOpts makes a LUKS-encrypted qcow2. The passphrase is 32 random
// bytes, so key stretching adds nothing but opening time: QEMU's default
// (2 s of PBKDF per open, per layer) would make every snapshot of a
// deep chain take minutes. 10 ms keeps LUKS's format unchanged.
const encryptOpts = "encrypt.format=luks,encrypt.key-secret=" + secretID + ",encrypt.iter-time=10"

// image is a qcow2 file as qemu-img must open it: its path plus, for each
// layer of its backing chain from the file itself downwards, whether that
// layer is encrypted.
type image struct {
	Path string
	// Encrypted[0] is the file itself, Encrypted[1] its backing file, …
	Encrypted []bool
	// KeyFile is the base64 passphrase file; needed when any layer is
	// encrypted.
	KeyFile string
}

func (im image) anyEncrypted() bool {
	for _, e := range im.Encrypted {
		if e {
			return true
		}
	}
	return false
}

// optionPairs lists the block options that open im with a key at every
// encrypted layer ("backing.backing.encrypt.key-secret" for the third).
// Options only for the top layer are returned when topOnly: qemu-img
// rejects backing options when it does not open the backing (-u).
func (im image) optionPairs(topOnly bool) [][2]string {
	p := [][2]string{{"driver", "qcow2"}, {"file.filename", im.Path}}
	prefix := ""
	for i, enc := range im.Encrypted {
		if topOnly && i > 0 {
			break
		}
		if enc {
			p = append(p, [2]string{prefix + "encrypt.key-secret", secretID})
		}
		prefix += "backing."
	}
	return p
}

// escapeOpt doubles commas, QEMU's escape inside option strings.
func escapeOpt(s string) string { return strings.ReplaceAll(s, ",", ",,") }

// secretObject defines the key for qemu-img from the key file, so the key
// never appears on a command line.
func secretObject(keyFile string) []string {
	return []string{"--object", "secret,id=" + secretID + ",file=" + escapeOpt(keyFile) + ",format=raw"}
}

// imageArgs names im on a qemu-img command line: "-f qcow2 PATH" when no
// layer is encrypted, else the secret object and --image-opts.
func imageArgs(im image, topOnly bool) []string {
	if !im.anyEncrypted() {
		return []string{"-f", "qcow2", im.Path}
	}
	var kv []string
	for _, p := range im.optionPairs(topOnly) {
		kv = append(kv, p[0]+"="+escapeOpt(p[1]))
	}
	return append(secretObject(im.KeyFile), "--image-opts", strings.Join(kv, ","))
}

// jsonFilename is im as a json: pseudo-filename, the only way to hand
// qemu-img rebase a new backing file that needs a key.
func jsonFilename(im image) string {
	m := map[string]string{}
	for _, p := range im.optionPairs(false) {
		m[p[0]] = p[1]
	}
	b, _ := json.Marshal(m) // map keys marshal sorted: stable output
	return "json:" + string(b)
}

// createArgs makes a new qcow2 file of size bytes at path, encrypted when
// encrypted (with the key in keyFile), as an overlay of backing when set.
// The backing file is not opened (-u): it may be held by a running VM,
// and its size does not matter because size is always given.
func createArgs(path string, size int64, encrypted bool, keyFile, backing string) []string {
	a := []string{"create", "-q"}
	if encrypted {
		a = append(a, secretObject(keyFile)...)
	}
	a = append(a, "-f", "qcow2")
	if backing != "" {
		a = append(a, "-b", backing, "-F", "qcow2", "-u")
	}
	if encrypted {
		a = append(a, "-o", encryptOpts)
	}
	return append(a, path, strconv.FormatInt(size, 10))
}

// convertArgs copies src (whole chain, flattened) into a new standalone
// qcow2 at dst, encrypted when encrypted: the slow path, for encrypting a
// copy of unencrypted data. keyFile is the key of both sides.
func convertArgs(src image, dst string, encrypted bool, keyFile string) []string {
	a := []string{"convert", "-q"}
	if encrypted && !src.anyEncrypted() {
		a = append(a, secretObject(keyFile)...)
	}
	if src.anyEncrypted() {
		a = append(a, imageArgs(src, false)...)
	} else {
		a = append(a, "-f", "qcow2", src.Path)
	}
	a = append(a, "-O", "qcow2")
	if encrypted {
		a = append(a, "-o", encryptOpts)
	}
	return append(a, dst)
}

// rebaseArgs moves im onto newBacking (nil: no backing, im becomes
// standalone). Safe mode: qemu-img copies into im every cluster where the
// old and the new backing chain differ and im has no data of its own, so
// what im reads does not change. When the new backing needs a key it is
// named as a json: filename; fixBackingArgs then writes the plain path.
// forceShare (-U) reads files a running VM holds open (they must not be
// written meanwhile).
func rebaseArgs(im image, newBacking *image, forceShare bool) []string {
	a := []string{"rebase", "-q"}
	if forceShare {
		a = append(a, "-U")
	}
	a = append(a, "-t", "writeback", "-T", "writeback")
	b := ""
	if newBacking != nil {
		b = newBacking.Path
		if newBacking.anyEncrypted() {
			b = jsonFilename(*newBacking)
		}
	}
	a = append(a, "-b", b)
	if newBacking != nil {
		a = append(a, "-F", "qcow2")
	}
	// imageArgs puts "-f qcow2 PATH" or "--object … --image-opts OPTS" last.
	return append(a, imageArgs(im, false)...)
}

// fixBackingArgs rewrites im's backing file name in its header only (-u),
// replacing the json: name rebaseArgs had to use by the plain path.
func fixBackingArgs(im image, backing string) []string {
	a := []string{"rebase", "-q", "-u", "-b", backing, "-F", "qcow2"}
	return append(a, imageArgs(im, true)...)
}

// resizeArgs grows im to size bytes.
func resizeArgs(im image, size int64) []string {
	a := []string{"resize", "-q"}
	a = append(a, imageArgs(im, false)...)
	return append(a, strconv.FormatInt(size, 10))
}

// checkArgs checks im's metadata; -U so a volume in use can be checked
// (read-only: check never repairs here).
func checkArgs(im image) []string {
	a := []string{"check", "-U", "--output=json"}
	return append(a, imageArgs(im, false)...)
}

// infoArgs reads im's header (size, backing file) without any key.
func infoArgs(path string) []string {
	return []string{"info", "-U", "--output=json", "-f", "qcow2", path}
}

// commitArgs writes im's own data into its backing file (the layer right
// below it), which must not be open elsewhere.
func commitArgs(im image) []string {
	a := []string{"commit", "-q", "-t", "writeback"}
	return append(a, imageArgs(im, false)...)
}

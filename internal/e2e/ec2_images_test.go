package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// sh runs a bash pipeline and returns its trimmed stdout.
func sh(t *testing.T, script string) string {
	t.Helper()
	out, err := exec.Command("bash", "-o", "pipefail", "-c", script).Output()
	if err != nil {
		t.Fatalf("%s: %v", script, err)
	}
	return strings.TrimSpace(string(out))
}

type keyPairsJSON struct {
	KeyPairs []struct {
		KeyPairId, KeyName, KeyType, KeyFingerprint, PublicKey, CreateTime string
		Tags                                                               []struct{ Key, Value string }
	}
}

// Key pairs through the aws CLI: the private keys work with ssh-keygen and
// the fingerprints are the ones AWS documents how to recompute.
func TestKeyPairsWithTheAWSCLI(t *testing.T) {
	lookTool(t, "ssh-keygen")
	lookTool(t, "openssl")
	d := startDaemon(t, "")
	e := newAWSEnv(t, d)
	dir := t.TempDir()

	var created struct{ KeyMaterial, KeyFingerprint, KeyName, KeyPairId string }
	e.ok(&created, "labcloud", "ec2", "create-key-pair", "--key-name", "lab-rsa", "--tag-specifications",
		"ResourceType=key-pair,Tags=[{Key=course,Value=net101}]")
	rsaKey := filepath.Join(dir, "lab-rsa.pem")
	if err := os.WriteFile(rsaKey, []byte(created.KeyMaterial), 0o600); err != nil {
		t.Fatal(err)
	}
	if want := strings.TrimSpace(strings.SplitN(sh(t, "openssl pkcs8 -in "+rsaKey+" -inform PEM -outform DER -topk8 -nocrypt | openssl sha1 -c"), "= ", 2)[1]); created.KeyFingerprint != want {
		t.Fatalf("create-key-pair rsa fingerprint %s, openssl says %s", created.KeyFingerprint, want)
	}
	rsaPub := sh(t, "ssh-keygen -y -f "+rsaKey)

	var ed struct{ KeyMaterial, KeyFingerprint string }
	e.ok(&ed, "labcloud", "ec2", "create-key-pair", "--key-name", "lab-ed", "--key-type", "ed25519")
	edKey := filepath.Join(dir, "lab-ed")
	if err := os.WriteFile(edKey, []byte(ed.KeyMaterial), 0o600); err != nil {
		t.Fatal(err)
	}
	edPub := sh(t, "ssh-keygen -y -f "+edKey)
	if fp := strings.Fields(sh(t, "ssh-keygen -l -E sha256 -f "+edKey))[1]; ed.KeyFingerprint != strings.TrimPrefix(fp, "SHA256:")+"=" {
		t.Fatalf("create-key-pair ed25519 fingerprint %s, ssh-keygen says %s", ed.KeyFingerprint, fp)
	}

	var kps keyPairsJSON
	e.ok(&kps, "labcloud", "ec2", "describe-key-pairs", "--include-public-key")
	pubs := map[string]string{}
	for _, k := range kps.KeyPairs {
		f := strings.Fields(k.PublicKey)
		if len(f) < 2 {
			t.Fatalf("key pair %s has public key %q", k.KeyName, k.PublicKey)
		}
		pubs[k.KeyName] = f[0] + " " + f[1]
	}
	if len(kps.KeyPairs) != 2 || pubs["lab-rsa"] != rsaPub || pubs["lab-ed"] != strings.Join(strings.Fields(edPub)[:2], " ") {
		t.Fatalf("describe-key-pairs %+v; ssh-keygen -y gives %q and %q", kps, rsaPub, edPub)
	}

	// Imported keys: AWS's fingerprints for imported keys.
	sh(t, "ssh-keygen -q -t rsa -b 4096 -N '' -C student@lab -f "+dir+"/imp-rsa")
	sh(t, "ssh-keygen -q -t ed25519 -N '' -C student@lab -f "+dir+"/imp-ed")
	var imp struct{ KeyFingerprint, KeyPairId string }
	e.ok(&imp, "labcloud", "ec2", "import-key-pair", "--key-name", "imp-rsa", "--public-key-material", "fileb://"+dir+"/imp-rsa.pub")
	if want := strings.TrimSpace(strings.SplitN(sh(t, "ssh-keygen -ef "+dir+"/imp-rsa.pub -m PEM | openssl rsa -RSAPublicKey_in -outform DER 2>/dev/null | openssl md5 -c"), "= ", 2)[1]); imp.KeyFingerprint != want {
		t.Fatalf("import-key-pair rsa fingerprint %s, want %s", imp.KeyFingerprint, want)
	}
	e.ok(&imp, "labcloud", "ec2", "import-key-pair", "--key-name", "imp-ed", "--public-key-material", "fileb://"+dir+"/imp-ed.pub")
	if fp := strings.Fields(sh(t, "ssh-keygen -l -E sha256 -f "+dir+"/imp-ed.pub"))[1]; imp.KeyFingerprint != strings.TrimPrefix(fp, "SHA256:")+"=" {
		t.Fatalf("import-key-pair ed25519 fingerprint %s, ssh-keygen says %s", imp.KeyFingerprint, fp)
	}
	os.WriteFile(dir+"/bad.pub", []byte("ssh-dss AAAAB3NzaC1kc3MAAACBAP== x\n"), 0o644)
	e.fails("InvalidKey.Format", "labcloud", "ec2", "import-key-pair", "--key-name", "bad", "--public-key-material", "fileb://"+dir+"/bad.pub")
	e.fails("InvalidKeyPair.Duplicate", "labcloud", "ec2", "create-key-pair", "--key-name", "imp-ed")

	// Filters.
	names := func(args ...string) string {
		var out keyPairsJSON
		e.ok(&out, "labcloud", append([]string{"ec2", "describe-key-pairs"}, args...)...)
		var n []string
		for _, k := range out.KeyPairs {
			n = append(n, k.KeyName)
		}
		return strings.Join(n, ",")
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--filters", "Name=key-type,Values=ed25519"}, "imp-ed,lab-ed"},
		{[]string{"--filters", "Name=key-name,Values=lab-*"}, "lab-ed,lab-rsa"},
		{[]string{"--filters", "Name=tag:course,Values=net101"}, "lab-rsa"},
		{[]string{"--filters", "Name=tag-key,Values=course"}, "lab-rsa"},
		{[]string{"--filters", "Name=fingerprint,Values=" + created.KeyFingerprint}, "lab-rsa"},
		{[]string{"--key-pair-ids", imp.KeyPairId}, "imp-ed"},
		{[]string{"--key-names", "imp-rsa", "lab-ed"}, "imp-rsa,lab-ed"},
	} {
		if got := names(tt.args...); got != tt.want {
			t.Errorf("describe-key-pairs %v = %s, want %s", tt.args, got, tt.want)
		}
	}
	e.fails("InvalidKeyPair.NotFound", "labcloud", "ec2", "describe-key-pairs", "--key-names", "nope")

	// An IAM user with no policy may not create key pairs.
	e.createUserWithKey("labcloud", "alice")
	e.fails("UnauthorizedOperation", "alice", "ec2", "create-key-pair", "--key-name", "alices")

	e.ok(nil, "labcloud", "ec2", "delete-key-pair", "--key-name", "lab-rsa")
	e.ok(nil, "labcloud", "ec2", "delete-key-pair", "--key-name", "lab-rsa") // succeeds again, as in AWS
	e.ok(nil, "labcloud", "ec2", "delete-key-pair", "--key-pair-id", imp.KeyPairId)
	if got := names(); got != "imp-rsa,lab-ed" {
		t.Fatalf("after deletes: %s", got)
	}
}

type imagesJSON struct {
	Images []struct {
		ImageId, Name, State, OwnerId, ImageOwnerAlias, RootDeviceName, RootDeviceType, Hypervisor, VirtualizationType, Architecture string
		Public                                                                                                                       bool
		BlockDeviceMappings                                                                                                          []struct {
			DeviceName string
			Ebs        struct {
				VolumeSize          int
				VolumeType          string
				DeleteOnTermination bool
			}
		}
		Tags []struct{ Key, Value string }
	}
}

// The AMI catalogue: labcloud-tiny built and registered by the labcloud
// CLI, public to other accounts, tagged per account, deregistered.
func TestImagesWithTheAWSCLI(t *testing.T) {
	d := startDaemon(t, "")
	e := newAWSEnv(t, d)
	labcloud := filepath.Join(binDir, "labcloud")

	out, errOut, code := run(t, nil, labcloud, "--state-dir", d.stateDir, "image", "build", "labcloud-tiny", "--register")
	if code != 0 {
		t.Fatalf("labcloud image build labcloud-tiny --register: exit %d: %s", code, errOut)
	}
	ami := strings.TrimSpace(out)
	if !strings.HasPrefix(ami, "ami-") || len(ami) != 21 {
		t.Fatalf("image build printed %q, want an AMI id", out)
	}
	// Its files are read-only copies in the state dir.
	for _, f := range []string{"disk.qcow2", "vmlinuz", "initrd.img"} {
		st, err := os.Stat(filepath.Join(d.stateDir, "images", ami, f))
		if err != nil || st.Mode().Perm() != 0o444 {
			t.Fatalf("%s of %s: %v (mode %v), want a 0444 file", f, ami, err, st.Mode())
		}
	}
	out, errOut, code = run(t, nil, labcloud, "--state-dir", d.stateDir, "images")
	if code != 0 || !strings.Contains(out, ami) || !strings.Contains(out, "labcloud-tiny") {
		t.Fatalf("labcloud images: exit %d: %s %s", code, out, errOut)
	}

	out, errOut, code = run(t, nil, labcloud, "--state-dir", d.stateDir, "admin", "create-account", "team-b")
	if code != 0 {
		t.Fatalf("labcloud admin create-account: %d %s", code, errOut)
	}
	f, err := os.OpenFile(e.creds, os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(f, "\n"+out)
	f.Close()

	var ims imagesJSON
	e.ok(&ims, "team-b", "ec2", "describe-images")
	if len(ims.Images) != 1 {
		t.Fatalf("team-b sees %d images, want labcloud-tiny: %+v", len(ims.Images), ims)
	}
	im := ims.Images[0]
	if im.ImageId != ami || im.Name != "labcloud-tiny" || !im.Public || im.State != "available" || im.ImageOwnerAlias != "labcloud" ||
		im.RootDeviceName != "/dev/xvda" || im.RootDeviceType != "ebs" || im.Hypervisor != "xen" || im.VirtualizationType != "hvm" ||
		im.Architecture != "x86_64" || len(im.BlockDeviceMappings) != 1 || im.BlockDeviceMappings[0].Ebs.VolumeSize < 1 ||
		im.BlockDeviceMappings[0].Ebs.VolumeType != "gp3" || !im.BlockDeviceMappings[0].Ebs.DeleteOnTermination {
		t.Fatalf("describe-images as team-b: %+v", im)
	}
	ims = imagesJSON{}
	e.ok(&ims, "team-b", "ec2", "describe-images", "--owners", "self")
	if len(ims.Images) != 0 {
		t.Fatalf("--owners self shows the admin's image to team-b: %+v", ims)
	}
	ims = imagesJSON{}
	e.ok(&ims, "team-b", "ec2", "describe-images", "--owners", "labcloud", "--filters", "Name=name,Values=labcloud-*", "Name=is-public,Values=true")
	if len(ims.Images) != 1 {
		t.Fatalf("--owners labcloud name=labcloud-*: %+v", ims)
	}

	e.ok(nil, "team-b", "ec2", "create-tags", "--resources", ami, "--tags", "Key=purpose,Value=lab1")
	ims = imagesJSON{}
	e.ok(&ims, "team-b", "ec2", "describe-images", "--filters", "Name=tag:purpose,Values=lab1")
	if len(ims.Images) != 1 || len(ims.Images[0].Tags) != 1 || ims.Images[0].Tags[0].Value != "lab1" {
		t.Fatalf("describe-images tag:purpose=lab1: %+v", ims)
	}
	ims = imagesJSON{}
	e.ok(&ims, "labcloud", "ec2", "describe-images", "--filters", "Name=tag:purpose,Values=lab1")
	if len(ims.Images) != 0 {
		t.Fatalf("team-b's tag is visible to the owner: %+v", ims)
	}
	var tg struct {
		Tags []struct{ ResourceId, ResourceType, Key, Value string }
	}
	e.ok(&tg, "team-b", "ec2", "describe-tags", "--filters", "Name=resource-id,Values="+ami)
	if len(tg.Tags) != 1 || tg.Tags[0].ResourceType != "image" || tg.Tags[0].Key != "purpose" {
		t.Fatalf("describe-tags: %+v", tg)
	}
	e.fails("InvalidParameterValue", "team-b", "ec2", "create-tags", "--resources", ami, "--tags", "Key=aws:x,Value=y")
	e.ok(nil, "team-b", "ec2", "delete-tags", "--resources", ami, "--tags", "Key=purpose")

	// Only the admin account's root registers images. (The aws CLI would
	// send the contents of a file:// parameter, so give it the bare path.)
	msg := e.fails("UnauthorizedOperation", "team-b", "ec2", "register-image", "--name", "mine",
		"--image-location", filepath.Join(d.stateDir, "build", "labcloud-tiny", "manifest.json"))
	if !strings.Contains(msg, "admin account") {
		t.Fatalf("refusal does not say who may register: %s", msg)
	}
	e.fails("InvalidAMIName.Duplicate", "labcloud", "ec2", "register-image", "--name", "labcloud-tiny",
		"--image-location", filepath.Join(d.stateDir, "build", "labcloud-tiny", "manifest.json"))
	e.fails("InvalidAMIID.Malformed", "team-b", "ec2", "describe-images", "--image-ids", "ami-nothex")
	e.fails("InvalidAMIID.NotFound", "team-b", "ec2", "describe-images", "--image-ids", "ami-0123456789abcdef0")
	e.fails("AuthFailure", "team-b", "ec2", "deregister-image", "--image-id", ami)

	e.ok(nil, "labcloud", "ec2", "deregister-image", "--image-id", ami)
	e.fails("InvalidAMIID.NotFound", "team-b", "ec2", "describe-images", "--image-ids", ami)
	ims = imagesJSON{}
	e.ok(&ims, "labcloud", "ec2", "describe-images")
	if len(ims.Images) != 0 {
		t.Fatalf("deregistered image still listed: %+v", ims)
	}
	if _, err := os.Stat(filepath.Join(d.stateDir, "images", ami, "disk.qcow2")); err != nil {
		t.Fatalf("deregistering removed the base file that running instances use: %v", err)
	}
}

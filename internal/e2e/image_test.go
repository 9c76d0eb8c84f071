package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// CreateImage with the real aws CLI and a real labcloud-tiny VM under
// TCG: a file written in the first VM is in a second VM launched from the
// new AMI, and a second account may launch the private AMI only once it
// is shared with it.
func TestCreateImageFromRunningInstance(t *testing.T) {
	d, e, ami := startVMLab(t)

	keyPath := e.keyFile("lab")
	launch := func(profile, image string) string {
		t.Helper()
		var r struct{ Instances []instanceView }
		args := []string{"ec2", "run-instances", "--image-id", image, "--instance-type", "t3.micro"}
		if profile == "labcloud" {
			args = append(args, "--key-name", "lab")
		}
		e.ok(&r, profile, args...)
		if len(r.Instances) != 1 {
			t.Fatalf("run-instances: %+v", r)
		}
		return r.Instances[0].InstanceId
	}

	first := launch("labcloud", ami)
	in := e.waitState(first, "running", 3*time.Minute)
	ns := netPrefix(d.stateDir) + "-" + in.VpcId
	sshRun(t, ns, keyPath, in.PrivateIpAddress, "echo imaged-marker > /root/marker.txt && sync", 3*time.Minute)

	var ci struct{ ImageId string }
	e.ok(&ci, "labcloud", "ec2", "create-image", "--instance-id", first, "--name", "tiny with marker", "--description", "from "+first)
	if !strings.HasPrefix(ci.ImageId, "ami-") {
		t.Fatalf("create-image: %+v", ci)
	}
	e.fails("InvalidAMIName.Duplicate", "labcloud", "ec2", "create-image", "--instance-id", first, "--name", "tiny with marker", "--no-reboot")
	// The paused VM was resumed: it still answers.
	sshRun(t, ns, keyPath, in.PrivateIpAddress, "cat /root/marker.txt", time.Minute)

	var ims struct {
		Images []struct {
			ImageId, State, Name, OwnerId string
			Public                        bool
			BlockDeviceMappings           []struct {
				DeviceName string
				Ebs        struct {
					SnapshotId string
					VolumeSize int
				}
			}
		}
	}
	e.ok(&ims, "labcloud", "ec2", "describe-images", "--image-ids", ci.ImageId)
	if len(ims.Images) != 1 || ims.Images[0].State != "available" || ims.Images[0].Public ||
		len(ims.Images[0].BlockDeviceMappings) != 1 || !strings.HasPrefix(ims.Images[0].BlockDeviceMappings[0].Ebs.SnapshotId, "snap-") ||
		ims.Images[0].BlockDeviceMappings[0].Ebs.VolumeSize < 1 {
		t.Fatalf("describe-images %s: %+v", ci.ImageId, ims)
	}

	second := launch("labcloud", ci.ImageId)
	in2 := e.waitState(second, "running", 3*time.Minute)
	if got := sshRun(t, ns, keyPath, in2.PrivateIpAddress, "cat /root/marker.txt", 3*time.Minute); !strings.Contains(got, "imaged-marker") {
		t.Fatalf("marker in the instance from %s: %q", ci.ImageId, got)
	}
	e.ok(nil, "labcloud", "ec2", "terminate-instances", "--instance-ids", first, second)

	// A second account: the private image is invisible until shared.
	out, errOut, code := run(t, nil, filepath.Join(binDir, "labcloud"), "--state-dir", d.stateDir, "admin", "create-account", "team-b")
	if code != 0 {
		t.Fatalf("labcloud admin create-account: %d %s", code, errOut)
	}
	f, err := os.OpenFile(e.creds, os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(f, "\n"+out)
	f.Close()
	var who struct{ Account string }
	e.ok(&who, "team-b", "sts", "get-caller-identity")

	e.fails("InvalidAMIID.NotFound", "team-b", "ec2", "describe-images", "--image-ids", ci.ImageId)
	e.fails("InvalidAMIID.NotFound", "team-b", "ec2", "run-instances", "--image-id", ci.ImageId, "--instance-type", "t3.micro")

	e.ok(nil, "labcloud", "ec2", "modify-image-attribute", "--image-id", ci.ImageId,
		"--launch-permission", "Add=[{UserId="+who.Account+"}]")
	var attr struct {
		LaunchPermissions []struct{ UserId, Group string }
	}
	e.ok(&attr, "labcloud", "ec2", "describe-image-attribute", "--image-id", ci.ImageId, "--attribute", "launchPermission")
	if len(attr.LaunchPermissions) != 1 || attr.LaunchPermissions[0].UserId != who.Account {
		t.Fatalf("describe-image-attribute launchPermission: %+v", attr)
	}
	ims.Images = nil
	e.ok(&ims, "team-b", "ec2", "describe-images", "--executable-users", "self")
	found := false
	for _, im := range ims.Images {
		found = found || im.ImageId == ci.ImageId
	}
	if !found {
		t.Fatalf("team-b describe-images --executable-users self does not list the shared %s: %+v", ci.ImageId, ims)
	}
	b := launch("team-b", ci.ImageId)
	e.ok(nil, "team-b", "ec2", "terminate-instances", "--instance-ids", b)

	e.ok(nil, "labcloud", "ec2", "reset-image-attribute", "--image-id", ci.ImageId, "--attribute", "launchPermission")
	e.fails("InvalidAMIID.NotFound", "team-b", "ec2", "run-instances", "--image-id", ci.ImageId, "--instance-type", "t3.micro")
}

package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// AMIs and EBS snapshots are one story, with the real aws CLI and real
// labcloud-tiny VMs under TCG: create-image records the root disk as a
// snapshot that describe-snapshots lists and that outlives the AMI; the
// snapshot cannot be deleted while an AMI uses it; register-image from it
// gives an AMI whose instance has the file written in the first VM; and a
// volume restores from it.
func TestSnapshotAMIRoundTrip(t *testing.T) {
	d, e, ami := startVMLab(t)

	keyPath := e.keyFile("lab")
	launch := func(image string) string {
		t.Helper()
		var r struct {
			Instances []struct {
				InstanceId string
				Placement  struct{ AvailabilityZone string }
			}
		}
		e.ok(&r, "labcloud", "ec2", "run-instances", "--image-id", image, "--instance-type", "t3.micro", "--key-name", "lab")
		if len(r.Instances) != 1 {
			t.Fatalf("run-instances: %+v", r)
		}
		return r.Instances[0].InstanceId
	}

	first := launch(ami)
	in := e.waitState(first, "running", 3*time.Minute)
	ns := netPrefix(d.stateDir) + "-" + in.VpcId
	sshRun(t, ns, keyPath, in.PrivateIpAddress, "echo snapami-marker > /root/marker.txt && sync", 3*time.Minute)

	var ci struct{ ImageId string }
	e.ok(&ci, "labcloud", "ec2", "create-image", "--instance-id", first, "--name", "snapami source")
	type imagesJSON struct {
		Images []struct {
			ImageId, State      string
			BlockDeviceMappings []struct {
				DeviceName string
				Ebs        struct {
					SnapshotId string
					VolumeSize int
				}
			}
		}
	}
	var ims imagesJSON
	e.ok(&ims, "labcloud", "ec2", "describe-images", "--image-ids", ci.ImageId)
	if len(ims.Images) != 1 || len(ims.Images[0].BlockDeviceMappings) != 1 {
		t.Fatalf("describe-images %s: %+v", ci.ImageId, ims)
	}
	snap := ims.Images[0].BlockDeviceMappings[0].Ebs.SnapshotId

	type snapshotsJSON struct {
		Snapshots []struct {
			SnapshotId, State, VolumeId, Description string
			VolumeSize                               int
		}
	}
	var ss snapshotsJSON
	e.ok(&ss, "labcloud", "ec2", "describe-snapshots", "--snapshot-ids", snap)
	// Its VolumeId is the first instance's root volume.
	var root struct {
		Reservations []struct {
			Instances []struct {
				BlockDeviceMappings []struct{ Ebs struct{ VolumeId string } }
			}
		}
	}
	e.ok(&root, "labcloud", "ec2", "describe-instances", "--instance-ids", first)
	rootVol := root.Reservations[0].Instances[0].BlockDeviceMappings[0].Ebs.VolumeId
	if len(ss.Snapshots) != 1 || ss.Snapshots[0].State != "completed" || ss.Snapshots[0].VolumeId != rootVol || rootVol == "" ||
		ss.Snapshots[0].Description != fmt.Sprintf("Created by CreateImage(%s) for %s", first, ci.ImageId) {
		t.Fatalf("describe-snapshots %s: %+v", snap, ss)
	}
	size := ss.Snapshots[0].VolumeSize

	msg := e.fails("InvalidSnapshot.InUse", "labcloud", "ec2", "delete-snapshot", "--snapshot-id", snap)
	if !strings.Contains(msg, ci.ImageId) {
		t.Fatalf("InUse message does not name the AMI: %s", msg)
	}
	e.ok(nil, "labcloud", "ec2", "deregister-image", "--image-id", ci.ImageId)
	e.ok(&ss, "labcloud", "ec2", "describe-snapshots", "--snapshot-ids", snap)
	if len(ss.Snapshots) != 1 || ss.Snapshots[0].State != "completed" {
		t.Fatalf("snapshot after deregister-image: %+v", ss)
	}

	var reg struct{ ImageId string }
	e.ok(&reg, "labcloud", "ec2", "register-image", "--name", "snapami registered", "--description", "from "+snap,
		"--root-device-name", "/dev/xvda", "--architecture", "x86_64", "--virtualization-type", "hvm",
		"--block-device-mappings", fmt.Sprintf("DeviceName=/dev/xvda,Ebs={SnapshotId=%s,VolumeSize=%d,DeleteOnTermination=true,VolumeType=gp3}", snap, size),
		"--tag-specifications", "ResourceType=image,Tags=[{Key=origin,Value=snapshot}]")
	e.ok(&ims, "labcloud", "ec2", "describe-images", "--image-ids", reg.ImageId)
	if len(ims.Images) != 1 || ims.Images[0].State != "available" || len(ims.Images[0].BlockDeviceMappings) != 1 ||
		ims.Images[0].BlockDeviceMappings[0].Ebs.SnapshotId != snap {
		t.Fatalf("describe-images %s: %+v", reg.ImageId, ims)
	}
	msg = e.fails("InvalidSnapshot.InUse", "labcloud", "ec2", "delete-snapshot", "--snapshot-id", snap)
	if !strings.Contains(msg, reg.ImageId) {
		t.Fatalf("InUse message does not name the registered AMI: %s", msg)
	}

	second := launch(reg.ImageId)
	in2 := e.waitState(second, "running", 3*time.Minute)
	if got := sshRun(t, ns, keyPath, in2.PrivateIpAddress, "cat /root/marker.txt", 3*time.Minute); !strings.Contains(got, "snapami-marker") {
		t.Fatalf("marker in the instance from %s: %q", reg.ImageId, got)
	}

	var inst struct {
		Reservations []struct {
			Instances []struct {
				Placement struct{ AvailabilityZone string }
			}
		}
	}
	e.ok(&inst, "labcloud", "ec2", "describe-instances", "--instance-ids", second)
	az := inst.Reservations[0].Instances[0].Placement.AvailabilityZone
	var v struct{ VolumeId string }
	e.ok(&v, "labcloud", "ec2", "create-volume", "--snapshot-id", snap, "--availability-zone", az)
	if got := e.volumeState(v.VolumeId, "available", "", time.Minute); got.VolumeId != v.VolumeId {
		t.Fatalf("volume from %s: %+v", snap, got)
	}
	e.ok(nil, "labcloud", "ec2", "terminate-instances", "--instance-ids", first, second)
}

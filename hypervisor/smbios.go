package hypervisor

import (
	"crypto/sha256"
	"encoding/hex"
)

// EC2Manufacturer is the vendor string EC2 Nitro instances report in DMI.
const EC2Manufacturer = "Amazon EC2"

// EC2UUID derives a stable system UUID for an instance that starts with
// "ec2", as EC2's do. cloud-init's EC2 detection (ds-identify) checks
// exactly that prefix on the DMI product_uuid and product_serial, so a
// guest image with the Ec2 datasource finds labcloud's metadata service.
// The rest is a hash of the instance id, so the guest sees the same UUID on
// every boot.
func EC2UUID(instanceID string) string {
	sum := sha256.Sum256([]byte("labcloud-instance:" + instanceID))
	h := hex.EncodeToString(sum[:16])
	h = "ec2" + h[3:]
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// EC2Identity returns the SMBIOS identity an EC2 Nitro instance of the
// given type presents: vendor "Amazon EC2", the instance type as product
// name, serial equal to the "ec2…" UUID, and the instance id as asset tag.
func EC2Identity(instanceID, instanceType string) SMBIOS {
	u := EC2UUID(instanceID)
	return SMBIOS{
		Manufacturer: EC2Manufacturer,
		Product:      instanceType,
		Serial:       u,
		UUID:         u,
		AssetTag:     instanceID,
	}
}

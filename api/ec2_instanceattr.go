package api

import (
	"context"
	"encoding/base64"

	"github.com/labcloud/labcloud/internal/errdefs"
)

// DescribeInstanceAttributeInput is the EC2 DescribeInstanceAttribute
// request: one attribute of one instance.
type DescribeInstanceAttributeInput struct {
	InstanceID string `locationName:"InstanceId" required:"true"`
	Attribute  string `locationName:"Attribute" required:"true"`
}

// DescribeInstanceAttributeOutput is the EC2 DescribeInstanceAttribute
// response. Only the asked attribute is set, as in EC2.
type DescribeInstanceAttributeOutput struct {
	InstanceID            string                `locationName:"instanceId"`
	InstanceType          *ENIStringAttribute   `locationName:"instanceType"`
	Kernel                *ENIStringAttribute   `locationName:"kernel"`
	Ramdisk               *ENIStringAttribute   `locationName:"ramdisk"`
	UserData              *ENIStringAttribute   `locationName:"userData"`
	DisableAPITermination *BoolAttribute        `locationName:"disableApiTermination"`
	ShutdownBehavior      *ENIStringAttribute   `locationName:"instanceInitiatedShutdownBehavior"`
	RootDeviceName        *ENIStringAttribute   `locationName:"rootDeviceName"`
	BlockDeviceMappings   []InstanceBlockDevice `locationName:"blockDeviceMapping" locationNameList:"item"`
	ProductCodes          []struct{}            `locationName:"productCodes" locationNameList:"item"`
	SourceDestCheck       *BoolAttribute        `locationName:"sourceDestCheck"`
	Groups                []GroupItem           `locationName:"groupSet" locationNameList:"item"`
	EbsOptimized          *BoolAttribute        `locationName:"ebsOptimized"`
	SriovNetSupport       *ENIStringAttribute   `locationName:"sriovNetSupport"`
	EnaSupport            *BoolAttribute        `locationName:"enaSupport"`
	EnclaveOptions        *EnclaveOptionsItem   `locationName:"enclaveOptions"`
	DisableAPIStop        *BoolAttribute        `locationName:"disableApiStop"`
}

// EnclaveOptionsItem is EC2's EnclaveOptions: labcloud has no Nitro
// Enclaves.
type EnclaveOptionsItem struct {
	Enabled bool `locationName:"enabled"`
}

// describeInstanceAttribute answers from what DescribeInstances shows of
// the instance (its network interface's groups and source/destination
// check included), so both always agree.
func (s *Server) describeInstanceAttribute(ctx context.Context, c *Call, in *DescribeInstanceAttributeInput) (*DescribeInstanceAttributeOutput, error) {
	svc, err := s.instancesService()
	if err != nil {
		return nil, err
	}
	list, err := svc.DescribeInstances(ctx, c.Principal.AccountID, []string{in.InstanceID})
	if err != nil {
		return nil, err
	}
	i := list[0]
	it := s.withNetworkView(ctx, instanceItem(svc, i))
	str := func(v string) *ENIStringAttribute {
		if v == "" {
			return &ENIStringAttribute{}
		}
		return &ENIStringAttribute{Value: &v}
	}
	boolean := func(v bool) *BoolAttribute { return &BoolAttribute{Value: &v} }
	out := &DescribeInstanceAttributeOutput{InstanceID: i.ID}
	switch in.Attribute {
	case "instanceType":
		out.InstanceType = str(it.InstanceType)
	case "kernel":
		out.Kernel = str("")
	case "ramdisk":
		out.Ramdisk = str("")
	case "userData":
		if len(i.UserData) == 0 {
			out.UserData = str("")
		} else {
			out.UserData = str(base64.StdEncoding.EncodeToString(i.UserData))
		}
	case "disableApiTermination":
		out.DisableAPITermination = boolean(false)
	case "instanceInitiatedShutdownBehavior":
		out.ShutdownBehavior = str(i.ShutdownBehavior)
	case "rootDeviceName":
		out.RootDeviceName = str(it.RootDeviceName)
	case "blockDeviceMapping":
		out.BlockDeviceMappings = it.BlockDeviceMappings
	case "productCodes":
		out.ProductCodes = []struct{}{}
	case "sourceDestCheck":
		out.SourceDestCheck = boolean(it.SourceDestCheck)
	case "groupSet":
		out.Groups = it.Groups
		if out.Groups == nil {
			out.Groups = []GroupItem{}
		}
	case "ebsOptimized":
		out.EbsOptimized = boolean(it.EbsOptimized)
	case "sriovNetSupport":
		out.SriovNetSupport = str("")
	case "enaSupport":
		out.EnaSupport = boolean(it.EnaSupport)
	case "enclaveOptions":
		out.EnclaveOptions = &EnclaveOptionsItem{}
	case "disableApiStop":
		out.DisableAPIStop = boolean(false)
	default:
		return nil, errdefs.InvalidParameter("InvalidParameterValue", "Value (%s) for parameter attribute is invalid. Unknown attribute: use instanceType, kernel, ramdisk, userData, disableApiTermination, instanceInitiatedShutdownBehavior, rootDeviceName, blockDeviceMapping, productCodes, sourceDestCheck, groupSet, ebsOptimized, sriovNetSupport, enaSupport, enclaveOptions or disableApiStop.", in.Attribute)
	}
	return out, nil
}

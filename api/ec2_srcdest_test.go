package api

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// TestModifyInstanceAttributeSourceDestCheck: both request forms the CLI
// sends (--no-source-dest-check and --attribute sourceDestCheck --value
// false) reach the network interface path, which this server (no
// fabric) answers Unavailable; a value that is not a boolean is the
// caller's error.
func TestModifyInstanceAttributeSourceDestCheck(t *testing.T) {
	c, _ := newInstancesClient(t)
	ctx := context.Background()
	id := aws.String("i-0123456789abcdef0")
	for _, tc := range []struct {
		name string
		in   ec2.ModifyInstanceAttributeInput
		code string
	}{
		{"structured", ec2.ModifyInstanceAttributeInput{InstanceId: id, SourceDestCheck: &ec2types.AttributeBooleanValue{Value: aws.Bool(false)}}, "Unavailable"},
		{"attribute and value", ec2.ModifyInstanceAttributeInput{InstanceId: id, Attribute: ec2types.InstanceAttributeNameSourceDestCheck, Value: aws.String("false")}, "Unavailable"},
		{"not a boolean", ec2.ModifyInstanceAttributeInput{InstanceId: id, Attribute: ec2types.InstanceAttributeNameSourceDestCheck, Value: aws.String("maybe")}, "InvalidParameterValue"},
		{"no value", ec2.ModifyInstanceAttributeInput{InstanceId: id, Attribute: ec2types.InstanceAttributeNameSourceDestCheck}, "MissingParameter"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.ModifyInstanceAttribute(ctx, &tc.in)
			if got := apiCode(err); got != tc.code {
				t.Fatalf("got %v (code %q), want %s", err, got, tc.code)
			}
		})
	}
}

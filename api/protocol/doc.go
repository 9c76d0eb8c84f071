// Package protocol is the server side of the two AWS wire protocols that
// labcloud's single endpoint speaks: "ec2" for EC2 and "query" (awsQuery)
// for IAM and STS. It decodes request parameters (a form body or query
// string) into Go structs and encodes Go structs into XML responses and
// errors that the aws CLI, boto3 and aws-sdk-go-v2 parse.
//
// Both directions are driven by a Shape, the same model botocore uses. A
// shape comes either from a botocore-format model (ShapesFromBotocore, used
// by the tests with AWS's protocol test vectors) or from a Go struct and its
// aws-sdk-go-v1-style tags (ShapeOf, used by handlers). Go values are
// converted to a generic form (maps, slices, scalars) and only the generic
// form is encoded or decoded, so there is exactly one implementation of the
// naming rules (names.go) for both sources.
//
// The documents were checked against the clients' own parsers. Botocore
// 1.43.11: testdata/botocore_check.py feeds the output of EncodeEC2,
// EncodeEC2Error, EncodeQuery and EncodeQueryError to
// botocore.parsers.create_parser (EC2QueryParser for "ec2", QueryParser for
// "query") with the real ec2, iam and sts models (DescribeRegions, ListUsers,
// GetUser errors, GetCallerIdentity) and every field came back as sent;
// TestBotocoreParsesOutput repeats this whenever python3 and botocore are
// installed. aws-sdk-go-v2 v1.48.0 was checked by reading its source:
// aws/protocol/ec2query/error_utils.go reads Errors>Error>Code and
// RequestID, aws/protocol/xml/error_utils.go reads Error>Code and
// RequestId, and the generated EC2 list deserializers accept only <item>
// elements, which is why EC2 lists default to item and not member.
package protocol

package iamd

import (
	"crypto/sha256"
	"encoding/base32"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/labcloud/labcloud/iamd/policy"
)

// awsManagedAccount is the account field of AWS-managed policy ARNs.
const awsManagedAccount = "aws"

// awsManagedDate is the CreateDate and UpdateDate of every built-in
// AWS-managed policy: the day IAM managed policies were launched.
var awsManagedDate = time.Date(2015, 2, 6, 18, 39, 46, 0, time.UTC)

// awsManagedDocs are the AWS-managed policies labcloud has built in, with
// documents written from what AWS documents each policy to mean, limited
// to the services labcloud serves (ec2, iam, sts) plus the actions AWS's
// own documents name on other services, so that policies copied from AWS
// documentation into a lab behave alike.
var awsManagedDocs = map[string]struct{ description, document string }{
	"AdministratorAccess": {
		"Provides full access to AWS services and resources.",
		`{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Effect": "Allow",
      "Action": "*",
      "Resource": "*"
    }
  ]
}`},
	"PowerUserAccess": {
		"Provides full access to AWS services and resources, but does not allow management of Users and groups.",
		`{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Effect": "Allow",
      "NotAction": [
        "iam:*",
        "organizations:*",
        "account:*"
      ],
      "Resource": "*"
    },
    {
      "Effect": "Allow",
      "Action": [
        "iam:CreateServiceLinkedRole",
        "iam:DeleteServiceLinkedRole",
        "iam:ListRoles",
        "organizations:DescribeOrganization",
        "account:ListRegions",
        "account:GetAccountInformation"
      ],
      "Resource": "*"
    }
  ]
}`},
	"ReadOnlyAccess": {
		"Provides read-only access to AWS services and resources.",
		`{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Sid": "ReadOnlyActions",
      "Effect": "Allow",
      "Action": [
        "ec2:Describe*",
        "ec2:Get*",
        "ec2:List*",
        "ec2:Search*",
        "iam:Generate*",
        "iam:Get*",
        "iam:List*",
        "iam:Simulate*",
        "sts:GetCallerIdentity",
        "sts:GetSessionToken",
        "sts:DecodeAuthorizationMessage"
      ],
      "Resource": "*"
    }
  ]
}`},
	"IAMFullAccess": {
		"Provides full access to IAM via the AWS Management Console.",
		`{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Effect": "Allow",
      "Action": [
        "iam:*",
        "organizations:DescribeAccount",
        "organizations:DescribeOrganization",
        "organizations:DescribeOrganizationalUnit",
        "organizations:DescribePolicy",
        "organizations:ListChildren",
        "organizations:ListParents",
        "organizations:ListPoliciesForTarget",
        "organizations:ListRoots",
        "organizations:ListPolicies",
        "organizations:ListTargetsForPolicy"
      ],
      "Resource": "*"
    }
  ]
}`},
	"IAMReadOnlyAccess": {
		"Provides read only access to IAM via the AWS Management Console.",
		`{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Effect": "Allow",
      "Action": [
        "iam:GenerateCredentialReport",
        "iam:GenerateServiceLastAccessedDetails",
        "iam:Get*",
        "iam:List*",
        "iam:SimulateCustomPolicy",
        "iam:SimulatePrincipalPolicy"
      ],
      "Resource": "*"
    }
  ]
}`},
	"AmazonEC2FullAccess": {
		"Provides full access to Amazon EC2 via the AWS Management Console.",
		`{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Action": "ec2:*",
      "Effect": "Allow",
      "Resource": "*"
    },
    {
      "Effect": "Allow",
      "Action": "elasticloadbalancing:*",
      "Resource": "*"
    },
    {
      "Effect": "Allow",
      "Action": "cloudwatch:*",
      "Resource": "*"
    },
    {
      "Effect": "Allow",
      "Action": "autoscaling:*",
      "Resource": "*"
    },
    {
      "Effect": "Allow",
      "Action": "iam:CreateServiceLinkedRole",
      "Resource": "*",
      "Condition": {
        "StringEquals": {
          "iam:AWSServiceName": [
            "autoscaling.amazonaws.com",
            "ec2scheduled.amazonaws.com",
            "elasticloadbalancing.amazonaws.com",
            "spot.amazonaws.com",
            "spotfleet.amazonaws.com",
            "transitgateway.amazonaws.com"
          ]
        }
      }
    }
  ]
}`},
	"AmazonEC2ReadOnlyAccess": {
		"Provides read only access to Amazon EC2 via the AWS Management Console.",
		`{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Effect": "Allow",
      "Action": "ec2:Describe*",
      "Resource": "*"
    },
    {
      "Effect": "Allow",
      "Action": "elasticloadbalancing:Describe*",
      "Resource": "*"
    },
    {
      "Effect": "Allow",
      "Action": [
        "cloudwatch:ListMetrics",
        "cloudwatch:GetMetricStatistics",
        "cloudwatch:Describe*"
      ],
      "Resource": "*"
    },
    {
      "Effect": "Allow",
      "Action": "autoscaling:Describe*",
      "Resource": "*"
    }
  ]
}`},
	"AmazonVPCFullAccess": {
		"Provides full access to Amazon VPC via the AWS Management Console.",
		`{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Sid": "AmazonVPCFullAccess",
      "Effect": "Allow",
      "Action": [
        "ec2:AcceptVpcPeeringConnection",
        "ec2:AllocateAddress",
        "ec2:AssignIpv6Addresses",
        "ec2:AssignPrivateIpAddresses",
        "ec2:AssociateAddress",
        "ec2:AssociateDhcpOptions",
        "ec2:AssociateRouteTable",
        "ec2:AssociateSubnetCidrBlock",
        "ec2:AssociateVpcCidrBlock",
        "ec2:AttachInternetGateway",
        "ec2:AttachNetworkInterface",
        "ec2:AuthorizeSecurityGroupEgress",
        "ec2:AuthorizeSecurityGroupIngress",
        "ec2:CreateDhcpOptions",
        "ec2:CreateEgressOnlyInternetGateway",
        "ec2:CreateFlowLogs",
        "ec2:CreateInternetGateway",
        "ec2:CreateNatGateway",
        "ec2:CreateNetworkAcl",
        "ec2:CreateNetworkAclEntry",
        "ec2:CreateNetworkInterface",
        "ec2:CreateNetworkInterfacePermission",
        "ec2:CreateRoute",
        "ec2:CreateRouteTable",
        "ec2:CreateSecurityGroup",
        "ec2:CreateSubnet",
        "ec2:CreateTags",
        "ec2:CreateVpc",
        "ec2:CreateVpcEndpoint",
        "ec2:CreateVpcPeeringConnection",
        "ec2:DeleteDhcpOptions",
        "ec2:DeleteEgressOnlyInternetGateway",
        "ec2:DeleteFlowLogs",
        "ec2:DeleteInternetGateway",
        "ec2:DeleteNatGateway",
        "ec2:DeleteNetworkAcl",
        "ec2:DeleteNetworkAclEntry",
        "ec2:DeleteNetworkInterface",
        "ec2:DeleteNetworkInterfacePermission",
        "ec2:DeleteRoute",
        "ec2:DeleteRouteTable",
        "ec2:DeleteSecurityGroup",
        "ec2:DeleteSubnet",
        "ec2:DeleteTags",
        "ec2:DeleteVpc",
        "ec2:DeleteVpcEndpoints",
        "ec2:DeleteVpcPeeringConnection",
        "ec2:DescribeAccountAttributes",
        "ec2:DescribeAddresses",
        "ec2:DescribeAvailabilityZones",
        "ec2:DescribeDhcpOptions",
        "ec2:DescribeEgressOnlyInternetGateways",
        "ec2:DescribeFlowLogs",
        "ec2:DescribeInstances",
        "ec2:DescribeInternetGateways",
        "ec2:DescribeKeyPairs",
        "ec2:DescribeNatGateways",
        "ec2:DescribeNetworkAcls",
        "ec2:DescribeNetworkInterfaceAttribute",
        "ec2:DescribeNetworkInterfacePermissions",
        "ec2:DescribeNetworkInterfaces",
        "ec2:DescribePrefixLists",
        "ec2:DescribeRouteTables",
        "ec2:DescribeSecurityGroupReferences",
        "ec2:DescribeSecurityGroupRules",
        "ec2:DescribeSecurityGroups",
        "ec2:DescribeStaleSecurityGroups",
        "ec2:DescribeSubnets",
        "ec2:DescribeTags",
        "ec2:DescribeVpcAttribute",
        "ec2:DescribeVpcEndpoints",
        "ec2:DescribeVpcPeeringConnections",
        "ec2:DescribeVpcs",
        "ec2:DetachInternetGateway",
        "ec2:DetachNetworkInterface",
        "ec2:DisassociateAddress",
        "ec2:DisassociateRouteTable",
        "ec2:DisassociateSubnetCidrBlock",
        "ec2:DisassociateVpcCidrBlock",
        "ec2:ModifyNetworkInterfaceAttribute",
        "ec2:ModifySecurityGroupRules",
        "ec2:ModifySubnetAttribute",
        "ec2:ModifyVpcAttribute",
        "ec2:ModifyVpcEndpoint",
        "ec2:RejectVpcPeeringConnection",
        "ec2:ReleaseAddress",
        "ec2:ReplaceNetworkAclAssociation",
        "ec2:ReplaceNetworkAclEntry",
        "ec2:ReplaceRoute",
        "ec2:ReplaceRouteTableAssociation",
        "ec2:ResetNetworkInterfaceAttribute",
        "ec2:RevokeSecurityGroupEgress",
        "ec2:RevokeSecurityGroupIngress",
        "ec2:UnassignIpv6Addresses",
        "ec2:UnassignPrivateIpAddresses",
        "ec2:UpdateSecurityGroupRuleDescriptionsEgress",
        "ec2:UpdateSecurityGroupRuleDescriptionsIngress"
      ],
      "Resource": "*"
    }
  ]
}`},
}

// awsManaged holds the built-in policies as ManagedPolicy values, by
// lower-cased name, and their parsed documents (parsed once, on first use).
var awsManaged = func() map[string]ManagedPolicy {
	m := make(map[string]ManagedPolicy, len(awsManagedDocs))
	for name, d := range awsManagedDocs {
		m[strings.ToLower(name)] = ManagedPolicy{
			PolicyName:       name,
			PolicyID:         awsManagedID(name),
			ARN:              iamARN(awsManagedAccount, "policy", "/", name),
			Path:             "/",
			Description:      d.description,
			DefaultVersionID: "v1",
			CreateDate:       awsManagedDate,
			UpdateDate:       awsManagedDate,
			Versions:         []PolicyVersion{{VersionID: "v1", Document: d.document, CreateDate: awsManagedDate}},
			NextVersion:      2,
			AWSManaged:       true,
		}
	}
	return m
}()

var (
	awsManagedParsedOnce sync.Once
	awsManagedParsed     map[string]*policy.Policy
	awsManagedParseErr   error
)

// awsManagedPolicy returns a built-in policy's parsed document.
func awsManagedPolicy(name string) (*policy.Policy, error) {
	awsManagedParsedOnce.Do(func() {
		awsManagedParsed = map[string]*policy.Policy{}
		for n, d := range awsManagedDocs {
			p, err := parseDocument(d.document, policy.KindIdentity)
			if err != nil {
				awsManagedParseErr = err
				return
			}
			awsManagedParsed[strings.ToLower(n)] = p
		}
	})
	if awsManagedParseErr != nil {
		return nil, awsManagedParseErr
	}
	return awsManagedParsed[strings.ToLower(name)], nil
}

// awsManagedID derives a stable policy id from the name, so the id of a
// built-in policy is the same in every install and after every restart.
func awsManagedID(name string) string {
	sum := sha256.Sum256([]byte("labcloud aws-managed policy " + name))
	return prefixPolicy + base32.StdEncoding.EncodeToString(sum[:])[:17]
}

// AWSManagedPolicyNames lists the built-in AWS-managed policies, sorted.
func AWSManagedPolicyNames() []string {
	names := make([]string, 0, len(awsManagedDocs))
	for n := range awsManagedDocs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

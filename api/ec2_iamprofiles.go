package api

import (
	"context"
	"encoding/base64"
	"errors"
	"net/url"
	"time"

	"github.com/labcloud/labcloud/iamd"
	"github.com/labcloud/labcloud/internal/errdefs"
	"github.com/labcloud/labcloud/internal/instances"
)

// Instance profiles on instances: RunInstances' IamInstanceProfile, the
// association actions, and the metadata options the metadata service
// obeys (ModifyInstanceMetadataOptions).

func (s *Server) registerIAMProfiles() {
	s.handle(ServiceEC2, "AssociateIamInstanceProfile", ec2Op(s.associateIamInstanceProfile))
	s.handle(ServiceEC2, "ReplaceIamInstanceProfileAssociation", ec2Op(s.replaceIamInstanceProfileAssociation))
	s.handle(ServiceEC2, "DisassociateIamInstanceProfile", ec2Op(s.disassociateIamInstanceProfile))
	s.handle(ServiceEC2, "DescribeIamInstanceProfileAssociations", ec2Op(s.describeIamInstanceProfileAssociations))
	s.handle(ServiceEC2, "ModifyInstanceMetadataOptions", ec2Op(s.modifyInstanceMetadataOptions))
}

// ec2IAMProfileTables adds the authorization entries of these actions.
// Associate and Replace also need iam:PassRole on the profile's role
// (RunInstances too: its entry names passProfileRole). The actions that
// take an AssociationId are checked on instance/*: the instance behind an
// association is only known after a lookup the authorizer cannot make.
func ec2IAMProfileTables(all func(*Call, url.Values) []string) {
	named := func(c *Call, p url.Values) []string { return []string{instanceARN(c, orStar(p.Get("InstanceId")))} }
	anyInstance := func(c *Call, _ url.Values) []string { return []string{instanceARN(c, "*")} }
	actionTable["ec2:AssociateIamInstanceProfile"] = actionSpec{resources: named, alsoOn: passProfileRole}
	actionTable["ec2:ReplaceIamInstanceProfileAssociation"] = actionSpec{resources: anyInstance, alsoOn: passProfileRole}
	actionTable["ec2:DisassociateIamInstanceProfile"] = actionSpec{resources: anyInstance}
	actionTable["ec2:DescribeIamInstanceProfileAssociations"] = actionSpec{resources: all}
	actionTable["ec2:ModifyInstanceMetadataOptions"] = actionSpec{resources: named}
}

// passProfileRole is the iam:PassRole check of a request that gives an
// instance a profile: on the profile's role, with iam:PassedToService
// ec2.amazonaws.com, as AWS checks it. A profile that cannot be resolved
// needs no check here: the handler refuses it with InvalidParameterValue.
func passProfileRole(ctx context.Context, a *IAMAuthorizer, c *Call, p url.Values) ([]actionOn, error) {
	arn, name := p.Get("IamInstanceProfile.Arn"), p.Get("IamInstanceProfile.Name")
	if arn == "" && name == "" {
		return nil, nil
	}
	account := c.Principal.AccountID
	if arn != "" {
		acct, n, ok := iamd.ParseInstanceProfileARN(arn)
		if !ok || acct != account {
			return nil, nil
		}
		name = n
	}
	_, role, err := a.IAM.InstanceProfileRole(ctx, account, name)
	if err != nil {
		return nil, nil
	}
	return []actionOn{{action: "iam:PassRole", resources: []string{role.ARN},
		context: map[string]string{"iam:PassedToService": iamd.EC2Service,
			"iam:AssociatedResourceARN": instanceARN(c, orStar(p.Get("InstanceId")))}}}, nil
}

// IamInstanceProfileSpecification names an instance profile by ARN or name.
type IamInstanceProfileSpecification struct {
	Arn  string `locationName:"Arn"`
	Name string `locationName:"Name"`
}

// IamInstanceProfileItem is an EC2 IamInstanceProfile (in an instance and
// in an association).
type IamInstanceProfileItem struct {
	Arn string `locationName:"arn"`
	ID  string `locationName:"id"`
}

// IamInstanceProfileAssociationItem is an EC2 IamInstanceProfileAssociation.
type IamInstanceProfileAssociationItem struct {
	AssociationID      string                 `locationName:"associationId"`
	InstanceID         string                 `locationName:"instanceId"`
	IamInstanceProfile IamInstanceProfileItem `locationName:"iamInstanceProfile"`
	State              string                 `locationName:"state"`
	Timestamp          time.Time              `locationName:"timestamp"`
}

func associationItem(a instances.AssociationInfo) *IamInstanceProfileAssociationItem {
	return &IamInstanceProfileAssociationItem{AssociationID: a.AssociationID, InstanceID: a.InstanceID,
		IamInstanceProfile: IamInstanceProfileItem{Arn: a.Profile.ARN, ID: a.Profile.ID}, State: a.State, Timestamp: a.Since}
}

// iamProfileItem is DescribeInstances' iamInstanceProfile of an instance.
func iamProfileItem(i instances.Instance) *IamInstanceProfileItem {
	if i.IAMProfile == nil {
		return nil
	}
	return &IamInstanceProfileItem{Arn: i.IAMProfile.Profile.ARN, ID: i.IAMProfile.Profile.ID}
}

func init() {
	instanceFilters["iam-instance-profile.arn"] = func(i instances.Instance) []string {
		if i.IAMProfile == nil {
			return nil
		}
		return []string{i.IAMProfile.Profile.ARN}
	}
}

// resolveProfile finds the instance profile a request names (ARN or
// name, in the caller's account) and checks that it can pass a role to an
// instance: it holds one, and the role trusts ec2.amazonaws.com. The
// caller's iam:PassRole was checked by the authorizer.
func (s *Server) resolveProfile(ctx context.Context, c *Call, arn, name string) (*instances.IAMProfile, error) {
	if s.opts.IAM == nil {
		return nil, errdefs.New(errdefs.ClassUnavailable, "Unavailable", "this labcloudd runs without IAM, so instance profiles cannot be used")
	}
	account := c.Principal.AccountID
	param, value := "iamInstanceProfile.name", name
	if arn != "" {
		param, value = "iamInstanceProfile.arn", arn
		acct, n, ok := iamd.ParseInstanceProfileARN(arn)
		if !ok || acct != account || (name != "" && name != n) {
			return nil, errdefs.InvalidParameter("InvalidParameterValue",
				"Value (%s) for parameter iamInstanceProfile.arn is invalid. Invalid IAM Instance Profile ARN", arn)
		}
		name = n
	}
	if name == "" {
		return nil, errdefs.New(errdefs.ClassMissingParameter, "MissingParameter", "Name the instance profile: IamInstanceProfile.Name or IamInstanceProfile.Arn")
	}
	prof, role, err := s.opts.IAM.InstanceProfileRole(ctx, account, name)
	switch {
	case errors.Is(err, iamd.ErrNoInstanceRole):
		return nil, errdefs.InvalidParameter("InvalidParameterValue",
			"Value (%s) for parameter %s is invalid. Instance profile %s holds no role: add one with aws iam add-role-to-instance-profile", value, param, prof.InstanceProfileName)
	case errdefs.Is(err, errdefs.ClassNotFound) || errdefs.Is(err, errdefs.ClassInvalidParameter):
		what := "name"
		if param == "iamInstanceProfile.arn" {
			what = "ARN"
		}
		return nil, errdefs.InvalidParameter("InvalidParameterValue",
			"Value (%s) for parameter %s is invalid. Invalid IAM Instance Profile %s", value, param, what)
	case err != nil:
		return nil, err
	}
	if arn != "" && arn != prof.ARN {
		return nil, errdefs.InvalidParameter("InvalidParameterValue",
			"Value (%s) for parameter iamInstanceProfile.arn is invalid. Invalid IAM Instance Profile ARN (the profile's ARN is %s)", arn, prof.ARN)
	}
	if err := iamd.EC2CanAssume(role); err != nil {
		return nil, errdefs.InvalidParameter("InvalidParameterValue",
			"Value (%s) for parameter %s is invalid. %s", value, param, err.Error())
	}
	return &instances.IAMProfile{ARN: prof.ARN, ID: prof.InstanceProfileID}, nil
}

// runInstancesProfile resolves RunInstances' IamInstanceProfile (nil when
// the request has none).
func (s *Server) runInstancesProfile(ctx context.Context, c *Call, in *RunInstancesInput) (*instances.IAMProfile, error) {
	if in.IamInstanceProfile == nil || (in.IamInstanceProfile.Arn == "" && in.IamInstanceProfile.Name == "") {
		return nil, nil
	}
	return s.resolveProfile(ctx, c, in.IamInstanceProfile.Arn, in.IamInstanceProfile.Name)
}

// AssociateIamInstanceProfileInput is the EC2 AssociateIamInstanceProfile request.
type AssociateIamInstanceProfileInput struct {
	IamInstanceProfile *IamInstanceProfileSpecification `locationName:"IamInstanceProfile"`
	InstanceID         string                           `locationName:"InstanceId"`
}

// AssociationOutput is the reply of Associate, Replace and Disassociate.
type AssociationOutput struct {
	IamInstanceProfileAssociation *IamInstanceProfileAssociationItem `locationName:"iamInstanceProfileAssociation"`
}

func (s *Server) associateIamInstanceProfile(ctx context.Context, c *Call, in *AssociateIamInstanceProfileInput) (*AssociationOutput, error) {
	svc, err := s.instancesService()
	if err != nil {
		return nil, err
	}
	if in.InstanceID == "" {
		return nil, errdefs.New(errdefs.ClassMissingParameter, "MissingParameter", "The request must contain the parameter InstanceId")
	}
	if in.IamInstanceProfile == nil {
		return nil, errdefs.New(errdefs.ClassMissingParameter, "MissingParameter", "The request must contain the parameter IamInstanceProfile")
	}
	prof, err := s.resolveProfile(ctx, c, in.IamInstanceProfile.Arn, in.IamInstanceProfile.Name)
	if err != nil {
		return nil, err
	}
	a, err := svc.AssociateIAMProfile(ctx, c.Principal.AccountID, in.InstanceID, *prof)
	if err != nil {
		return nil, err
	}
	return &AssociationOutput{IamInstanceProfileAssociation: associationItem(a)}, nil
}

// ReplaceIamInstanceProfileAssociationInput is the EC2 ReplaceIamInstanceProfileAssociation request.
type ReplaceIamInstanceProfileAssociationInput struct {
	IamInstanceProfile *IamInstanceProfileSpecification `locationName:"IamInstanceProfile"`
	AssociationID      string                           `locationName:"AssociationId"`
}

func (s *Server) replaceIamInstanceProfileAssociation(ctx context.Context, c *Call, in *ReplaceIamInstanceProfileAssociationInput) (*AssociationOutput, error) {
	svc, err := s.instancesService()
	if err != nil {
		return nil, err
	}
	if in.AssociationID == "" {
		return nil, errdefs.New(errdefs.ClassMissingParameter, "MissingParameter", "The request must contain the parameter AssociationId")
	}
	if in.IamInstanceProfile == nil {
		return nil, errdefs.New(errdefs.ClassMissingParameter, "MissingParameter", "The request must contain the parameter IamInstanceProfile")
	}
	prof, err := s.resolveProfile(ctx, c, in.IamInstanceProfile.Arn, in.IamInstanceProfile.Name)
	if err != nil {
		return nil, err
	}
	a, err := svc.ReplaceIAMProfile(ctx, c.Principal.AccountID, in.AssociationID, *prof)
	if err != nil {
		return nil, err
	}
	return &AssociationOutput{IamInstanceProfileAssociation: associationItem(a)}, nil
}

// DisassociateIamInstanceProfileInput is the EC2 DisassociateIamInstanceProfile request.
type DisassociateIamInstanceProfileInput struct {
	AssociationID string `locationName:"AssociationId"`
}

func (s *Server) disassociateIamInstanceProfile(ctx context.Context, c *Call, in *DisassociateIamInstanceProfileInput) (*AssociationOutput, error) {
	svc, err := s.instancesService()
	if err != nil {
		return nil, err
	}
	if in.AssociationID == "" {
		return nil, errdefs.New(errdefs.ClassMissingParameter, "MissingParameter", "The request must contain the parameter AssociationId")
	}
	a, err := svc.DisassociateIAMProfile(ctx, c.Principal.AccountID, in.AssociationID)
	if err != nil {
		return nil, err
	}
	return &AssociationOutput{IamInstanceProfileAssociation: associationItem(a)}, nil
}

// DescribeIamInstanceProfileAssociationsInput is the EC2 DescribeIamInstanceProfileAssociations request.
type DescribeIamInstanceProfileAssociationsInput struct {
	AssociationIDs []string `locationName:"AssociationId"`
	Filters        []Filter `locationName:"Filter"`
	MaxResults     *int32   `locationName:"MaxResults"`
	NextToken      *string  `locationName:"NextToken"`
}

// DescribeIamInstanceProfileAssociationsOutput is its reply.
type DescribeIamInstanceProfileAssociationsOutput struct {
	Associations []IamInstanceProfileAssociationItem `locationName:"iamInstanceProfileAssociationSet" locationNameList:"item"`
	NextToken    *string                             `locationName:"nextToken"`
}

var associationFilters = filterFields[instances.AssociationInfo]{
	"instance-id": func(a instances.AssociationInfo) []string { return []string{a.InstanceID} },
	"state":       func(a instances.AssociationInfo) []string { return []string{a.State} },
}

func (s *Server) describeIamInstanceProfileAssociations(ctx context.Context, c *Call, in *DescribeIamInstanceProfileAssociationsInput) (*DescribeIamInstanceProfileAssociationsOutput, error) {
	svc, err := s.instancesService()
	if err != nil {
		return nil, err
	}
	if in.MaxResults != nil && len(in.AssociationIDs) > 0 {
		return nil, errdefs.InvalidParameter("InvalidParameterCombination", "The parameter AssociationId cannot be used with the parameter MaxResults")
	}
	list, err := svc.IAMProfileAssociations(ctx, c.Principal.AccountID)
	if err != nil {
		return nil, err
	}
	if len(in.AssociationIDs) > 0 {
		byID := map[string]instances.AssociationInfo{}
		for _, a := range list {
			byID[a.AssociationID] = a
		}
		var sel []instances.AssociationInfo
		for _, id := range in.AssociationIDs {
			a, ok := byID[id]
			if !ok {
				return nil, errdefs.NotFound("InvalidAssociationID.NotFound", "An association with ID %s does not exist; list them with DescribeIamInstanceProfileAssociations", id)
			}
			sel = append(sel, a)
		}
		list = sel
	}
	if list, err = applyFilters(list, in.Filters, associationFilters); err != nil {
		return nil, err
	}
	start := 0
	if in.NextToken != nil && *in.NextToken != "" {
		raw, err := base64.RawURLEncoding.DecodeString(*in.NextToken)
		if err != nil {
			return nil, errdefs.InvalidParameter("InvalidParameterValue", "Invalid NextToken: pass the nextToken of the previous response unchanged")
		}
		start = len(list)
		for n, a := range list {
			if a.AssociationID == string(raw) {
				start = n
				break
			}
		}
	}
	end := len(list)
	out := &DescribeIamInstanceProfileAssociationsOutput{Associations: []IamInstanceProfileAssociationItem{}}
	if in.MaxResults != nil {
		n := int(*in.MaxResults)
		if n < 5 || n > 1000 {
			return nil, errdefs.InvalidParameter("InvalidParameterValue", "Value ( %d ) for parameter maxResults is invalid. Expecting a value between 5 and 1000", n)
		}
		if start+n < end {
			end = start + n
			tok := base64.RawURLEncoding.EncodeToString([]byte(list[end].AssociationID))
			out.NextToken = &tok
		}
	}
	for _, a := range list[start:end] {
		out.Associations = append(out.Associations, *associationItem(a))
	}
	return out, nil
}

// ModifyInstanceMetadataOptionsInput is the EC2 ModifyInstanceMetadataOptions request.
type ModifyInstanceMetadataOptionsInput struct {
	InstanceID              string `locationName:"InstanceId"`
	HTTPTokens              string `locationName:"HttpTokens"`
	HTTPPutResponseHopLimit *int32 `locationName:"HttpPutResponseHopLimit"`
	HTTPEndpoint            string `locationName:"HttpEndpoint"`
	HTTPProtocolIpv6        string `locationName:"HttpProtocolIpv6"`
	InstanceMetadataTags    string `locationName:"InstanceMetadataTags"`
}

// ModifyInstanceMetadataOptionsOutput is its reply.
type ModifyInstanceMetadataOptionsOutput struct {
	InstanceID              string              `locationName:"instanceId"`
	InstanceMetadataOptions MetadataOptionsItem `locationName:"instanceMetadataOptions"`
}

func (s *Server) modifyInstanceMetadataOptions(ctx context.Context, c *Call, in *ModifyInstanceMetadataOptionsInput) (*ModifyInstanceMetadataOptionsOutput, error) {
	svc, err := s.instancesService()
	if err != nil {
		return nil, err
	}
	if in.InstanceID == "" {
		return nil, errdefs.New(errdefs.ClassMissingParameter, "MissingParameter", "The request must contain the parameter InstanceId")
	}
	if in.HTTPProtocolIpv6 == "enabled" || in.InstanceMetadataTags == "enabled" {
		return nil, errdefs.New(errdefs.ClassNotImplemented, "UnsupportedOperation", "labcloud's metadata service serves neither IPv6 nor instance tags; leave HttpProtocolIpv6 and InstanceMetadataTags disabled")
	}
	m := instances.MetadataOptions{HTTPTokens: in.HTTPTokens, HTTPEndpoint: in.HTTPEndpoint}
	if in.HTTPPutResponseHopLimit != nil {
		m.HopLimit = int(*in.HTTPPutResponseHopLimit)
		if m.HopLimit == 0 {
			m.HopLimit = -1 // let the service refuse it
		}
	}
	got, err := svc.ModifyMetadataOptions(ctx, c.Principal.AccountID, in.InstanceID, m)
	if err != nil {
		return nil, err
	}
	// EC2 answers "pending" while the change propagates; here it applies
	// at the next metadata request already.
	return &ModifyInstanceMetadataOptionsOutput{InstanceID: in.InstanceID, InstanceMetadataOptions: MetadataOptionsItem{
		State: "pending", HTTPTokens: got.HTTPTokens, HTTPPutResponseHopLimit: int32(got.HopLimit), HTTPEndpoint: got.HTTPEndpoint,
		HTTPProtocolIpv6: "disabled", InstanceMetadataTags: "disabled"}}, nil
}

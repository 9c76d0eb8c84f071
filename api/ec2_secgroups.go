package api

import (
	"context"
	"net/url"
	"sort"
	"strconv"

	"github.com/labcloud/labcloud/internal/errdefs"
	"github.com/labcloud/labcloud/netfab"
)

func (s *Server) registerSecurityGroups() {
	s.handle(ServiceEC2, "CreateSecurityGroup", ec2Op(s.createSecurityGroup))
	s.handle(ServiceEC2, "DeleteSecurityGroup", ec2Op(s.deleteSecurityGroup))
	s.handle(ServiceEC2, "AuthorizeSecurityGroupIngress", ec2Op(s.authorizeIngress))
	s.handle(ServiceEC2, "AuthorizeSecurityGroupEgress", ec2Op(s.authorizeEgress))
	s.handle(ServiceEC2, "RevokeSecurityGroupIngress", ec2Op(s.revokeIngress))
	s.handle(ServiceEC2, "RevokeSecurityGroupEgress", ec2Op(s.revokeEgress))
	s.handle(ServiceEC2, "DescribeSecurityGroups", ec2Op(s.describeSecurityGroups))
	s.handle(ServiceEC2, "DescribeSecurityGroupRules", ec2Op(s.describeSecurityGroupRules))
	s.handle(ServiceEC2, "ModifySecurityGroupRules", ec2Op(s.modifySecurityGroupRules))
	s.handle(ServiceEC2, "ModifyNetworkInterfaceAttribute", ec2Op(s.modifyNetworkInterfaceAttribute))
	s.registerNetworkACLs()
}

// vpcFabric is the VPC fabric, or Unavailable when this labcloudd runs
// without one.
func (s *Server) vpcFabric() (*netfab.Fabric, error) {
	if s.opts.Network == nil {
		return nil, errdefs.New(errdefs.ClassUnavailable, "Unavailable", "this labcloudd runs without the network fabric (it needs root); start it as root to use VPC actions")
	}
	return s.opts.Network, nil
}

// tagsOf returns a resource's tags, none when the server has no tag store.
func (s *Server) tagsOf(ctx context.Context, acct, id string) (map[string]string, error) {
	if s.opts.Tags == nil {
		return map[string]string{}, nil
	}
	return s.opts.Tags.Of(ctx, acct, id)
}

// checkTaggable refuses TagSpecifications for an id prefix the tag store
// does not know before anything is created, so that a create never half
// succeeds (resource made, tags refused).
func (s *Server) checkTaggable(n int, sample string) error {
	if n == 0 {
		return nil
	}
	if s.opts.Tags == nil || s.opts.Tags.ResourceType(sample) == "" {
		return errdefs.New(errdefs.ClassUnavailable, "Unavailable", "this labcloudd cannot tag %s… resources yet; create without TagSpecifications and tag later", sample)
	}
	return nil
}

// CreateSecurityGroupInput is the EC2 CreateSecurityGroup request.
type CreateSecurityGroupInput struct {
	Description       string             `locationName:"GroupDescription" required:"true"`
	GroupName         string             `required:"true"`
	VpcID             string             `locationName:"VpcId"`
	TagSpecifications []TagSpecification `locationName:"TagSpecification" locationNameList:"item"`
}

// CreateSecurityGroupOutput is the EC2 CreateSecurityGroup response.
type CreateSecurityGroupOutput struct {
	GroupID          string    `locationName:"groupId"`
	Tags             []TagItem `locationName:"tagSet" locationNameList:"item"`
	SecurityGroupArn string    `locationName:"securityGroupArn"`
}

func (s *Server) createSecurityGroup(ctx context.Context, c *Call, in *CreateSecurityGroupInput) (*CreateSecurityGroupOutput, error) {
	nf, err := s.vpcFabric()
	if err != nil {
		return nil, err
	}
	tg, err := specTags(in.TagSpecifications, "security-group")
	if err != nil {
		return nil, err
	}
	if err := s.checkTaggable(len(tg), "sg-"); err != nil {
		return nil, err
	}
	acct := c.Principal.AccountID
	g, err := nf.CreateSecurityGroup(ctx, netfab.SGRequest{AccountID: acct, VPCID: in.VpcID, Name: in.GroupName, Description: in.Description})
	if err != nil {
		return nil, err
	}
	m, err := s.applySpecTags(ctx, acct, g.ID, tg)
	if err != nil {
		return nil, err
	}
	return &CreateSecurityGroupOutput{GroupID: g.ID, Tags: tagSet(m), SecurityGroupArn: ec2ARN(c, acct, "security-group/"+g.ID)}, nil
}

// DeleteSecurityGroupInput is the EC2 DeleteSecurityGroup request.
type DeleteSecurityGroupInput struct {
	GroupID   string `locationName:"GroupId"`
	GroupName string
}

// DeleteSecurityGroupOutput is the EC2 DeleteSecurityGroup response.
type DeleteSecurityGroupOutput struct {
	Return  bool   `locationName:"return"`
	GroupID string `locationName:"groupId"`
}

func (s *Server) deleteSecurityGroup(ctx context.Context, c *Call, in *DeleteSecurityGroupInput) (*DeleteSecurityGroupOutput, error) {
	nf, err := s.vpcFabric()
	if err != nil {
		return nil, err
	}
	acct := c.Principal.AccountID
	g, err := nf.DeleteSecurityGroup(ctx, acct, in.GroupID, in.GroupName)
	if err != nil {
		return nil, err
	}
	if s.opts.Tags != nil {
		if err := s.opts.Tags.Forget(ctx, acct, g.ID); err != nil {
			return nil, err
		}
		for _, r := range append(append([]netfab.SGRule{}, g.Ingress...), g.Egress...) {
			if err := s.opts.Tags.Forget(ctx, acct, r.ID); err != nil {
				return nil, err
			}
		}
	}
	return &DeleteSecurityGroupOutput{Return: true, GroupID: g.ID}, nil
}

// IPPermission is an EC2 IpPermission (request IpPermissions.N, response
// ipPermissions item).
type IPPermission struct {
	IPProtocol       string            `locationName:"ipProtocol"`
	FromPort         *int32            `locationName:"fromPort"`
	ToPort           *int32            `locationName:"toPort"`
	UserIDGroupPairs []UserIDGroupPair `locationName:"groups" locationNameList:"item"`
	IPRanges         []IPRange         `locationName:"ipRanges" locationNameList:"item"`
	IPv6Ranges       []IPv6Range       `locationName:"ipv6Ranges" locationNameList:"item"`
	PrefixListIDs    []PrefixListID    `locationName:"prefixListIds" locationNameList:"item"`
}

// UserIDGroupPair is a security group peer of a permission.
type UserIDGroupPair struct {
	Description            *string `locationName:"description"`
	UserID                 *string `locationName:"userId"`
	GroupName              *string `locationName:"groupName"`
	GroupID                *string `locationName:"groupId"`
	VpcID                  *string `locationName:"vpcId"`
	VpcPeeringConnectionID *string `locationName:"vpcPeeringConnectionId"`
	PeeringStatus          *string `locationName:"peeringStatus"`
}

// IPRange is an IPv4 CIDR peer of a permission.
type IPRange struct {
	Description *string `locationName:"description"`
	CidrIP      string  `locationName:"cidrIp"`
}

// IPv6Range is an IPv6 CIDR peer (refused: labcloud VPCs are IPv4).
type IPv6Range struct {
	Description *string `locationName:"description"`
	CidrIPv6    string  `locationName:"cidrIpv6"`
}

// PrefixListID is a prefix list peer (refused: labcloud has none).
type PrefixListID struct {
	Description  *string `locationName:"description"`
	PrefixListID string  `locationName:"prefixListId"`
}

// SGPermissionsInput is the request of AuthorizeSecurityGroupIngress and
// Egress and of RevokeSecurityGroupIngress and Egress (their wire names
// are the same): IpPermissions, or the older flat parameters.
type SGPermissionsInput struct {
	GroupID                    string             `locationName:"GroupId"`
	GroupName                  string             `locationName:"GroupName"`
	IPPermissions              []IPPermission     `locationName:"IpPermissions" locationNameList:"item"`
	CidrIP                     string             `locationName:"CidrIp"`
	FromPort                   *int32             `locationName:"FromPort"`
	ToPort                     *int32             `locationName:"ToPort"`
	IPProtocol                 string             `locationName:"IpProtocol"`
	SourceSecurityGroupName    string             `locationName:"SourceSecurityGroupName"`
	SourceSecurityGroupOwnerID string             `locationName:"SourceSecurityGroupOwnerId"`
	SecurityGroupRuleIDs       []string           `locationName:"SecurityGroupRuleId" locationNameList:"item"`
	TagSpecifications          []TagSpecification `locationName:"TagSpecification" locationNameList:"item"`
}

// SecurityGroupRule is one rule as DescribeSecurityGroupRules and the
// Authorize responses show it.
type SecurityGroupRule struct {
	SecurityGroupRuleID  string               `locationName:"securityGroupRuleId"`
	GroupID              string               `locationName:"groupId"`
	GroupOwnerID         string               `locationName:"groupOwnerId"`
	IsEgress             bool                 `locationName:"isEgress"`
	IPProtocol           string               `locationName:"ipProtocol"`
	FromPort             int32                `locationName:"fromPort"`
	ToPort               int32                `locationName:"toPort"`
	CidrIPv4             *string              `locationName:"cidrIpv4"`
	ReferencedGroupInfo  *ReferencedGroupInfo `locationName:"referencedGroupInfo"`
	Description          *string              `locationName:"description"`
	Tags                 []TagItem            `locationName:"tagSet" locationNameList:"item"`
	SecurityGroupRuleArn string               `locationName:"securityGroupRuleArn"`
}

// ReferencedGroupInfo is the peer group of a group-referencing rule.
type ReferencedGroupInfo struct {
	GroupID string `locationName:"groupId"`
	UserID  string `locationName:"userId"`
}

// AuthorizeSGOutput is the response of AuthorizeSecurityGroupIngress and
// Egress.
type AuthorizeSGOutput struct {
	Return             bool                `locationName:"return"`
	SecurityGroupRules []SecurityGroupRule `locationName:"securityGroupRuleSet" locationNameList:"item"`
}

// RevokedSecurityGroupRule is one rule a Revoke removed.
type RevokedSecurityGroupRule struct {
	SecurityGroupRuleID string  `locationName:"securityGroupRuleId"`
	GroupID             string  `locationName:"groupId"`
	IsEgress            bool    `locationName:"isEgress"`
	IPProtocol          string  `locationName:"ipProtocol"`
	FromPort            int32   `locationName:"fromPort"`
	ToPort              int32   `locationName:"toPort"`
	CidrIPv4            *string `locationName:"cidrIpv4"`
	ReferencedGroupID   *string `locationName:"referencedGroupId"`
	Description         *string `locationName:"description"`
}

// RevokeSGOutput is the response of RevokeSecurityGroupIngress and Egress.
type RevokeSGOutput struct {
	Return                    bool                       `locationName:"return"`
	UnknownIPPermissions      []IPPermission             `locationName:"unknownIpPermissionSet" locationNameList:"item"`
	RevokedSecurityGroupRules []RevokedSecurityGroupRule `locationName:"revokedSecurityGroupRuleSet" locationNameList:"item"`
}

func optInt(p *int32) *int {
	if p == nil {
		return nil
	}
	v := int(*p)
	return &v
}

func strOr(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func optStr(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// permissions turns the request into domain permissions: IpPermissions,
// or one permission from the flat parameters.
func permissions(in *SGPermissionsInput) ([]netfab.Permission, error) {
	var out []netfab.Permission
	for _, p := range in.IPPermissions {
		if len(p.PrefixListIDs) > 0 {
			return nil, errdefs.InvalidParameter("InvalidParameterValue", "prefix lists are not supported in labcloud VPCs: remove PrefixListIds")
		}
		np := netfab.Permission{Protocol: p.IPProtocol, FromPort: optInt(p.FromPort), ToPort: optInt(p.ToPort)}
		for _, r := range p.IPRanges {
			np.Peers = append(np.Peers, netfab.Peer{CIDR: r.CidrIP, Description: strOr(r.Description)})
		}
		for _, r := range p.IPv6Ranges {
			np.Peers = append(np.Peers, netfab.Peer{IPv6CIDR: r.CidrIPv6, Description: strOr(r.Description)})
		}
		for _, g := range p.UserIDGroupPairs {
			if g.GroupID == nil && g.GroupName == nil {
				return nil, errdefs.New(errdefs.ClassMissingParameter, "MissingParameter", "a UserIdGroupPair needs a GroupId (or GroupName)")
			}
			np.Peers = append(np.Peers, netfab.Peer{GroupID: strOr(g.GroupID), GroupName: strOr(g.GroupName), Description: strOr(g.Description)})
		}
		out = append(out, np)
	}
	if in.IPProtocol != "" || in.CidrIP != "" || in.SourceSecurityGroupName != "" || in.FromPort != nil || in.ToPort != nil {
		if len(in.IPPermissions) > 0 {
			return nil, errdefs.InvalidParameter("InvalidParameterCombination", "give either IpPermissions or the flat IpProtocol/FromPort/ToPort/CidrIp/SourceSecurityGroupName parameters, not both")
		}
		np := netfab.Permission{Protocol: in.IPProtocol, FromPort: optInt(in.FromPort), ToPort: optInt(in.ToPort)}
		if in.SourceSecurityGroupName != "" {
			if in.IPProtocol == "" {
				np.Protocol = "-1" // as AWS: a source group alone allows everything from it
			}
			np.Peers = append(np.Peers, netfab.Peer{GroupName: in.SourceSecurityGroupName})
		}
		if in.CidrIP != "" {
			np.Peers = append(np.Peers, netfab.Peer{CIDR: in.CidrIP})
		}
		out = append(out, np)
	}
	return out, nil
}

func (s *Server) resolveGroupID(ctx context.Context, nf *netfab.Fabric, acct string, in *SGPermissionsInput) (netfab.SecurityGroup, error) {
	return nf.SecurityGroup(ctx, acct, in.GroupID, in.GroupName)
}

func ruleOut(c *Call, g netfab.SecurityGroup, r netfab.SGRule, egress bool, tags map[string]string) SecurityGroupRule {
	out := SecurityGroupRule{SecurityGroupRuleID: r.ID, GroupID: g.ID, GroupOwnerID: g.AccountID, IsEgress: egress,
		IPProtocol: r.Protocol, FromPort: int32(r.FromPort), ToPort: int32(r.ToPort), CidrIPv4: optStr(r.CIDR),
		Description: optStr(r.Description), Tags: tagSet(tags),
		SecurityGroupRuleArn: ec2ARN(c, g.AccountID, "security-group-rule/"+r.ID)}
	if r.GroupID != "" {
		out.ReferencedGroupInfo = &ReferencedGroupInfo{GroupID: r.GroupID, UserID: g.AccountID}
	}
	return out
}

func (s *Server) authorizeIngress(ctx context.Context, c *Call, in *SGPermissionsInput) (*AuthorizeSGOutput, error) {
	return s.authorize(ctx, c, in, false)
}

func (s *Server) authorizeEgress(ctx context.Context, c *Call, in *SGPermissionsInput) (*AuthorizeSGOutput, error) {
	return s.authorize(ctx, c, in, true)
}

func (s *Server) authorize(ctx context.Context, c *Call, in *SGPermissionsInput, egress bool) (*AuthorizeSGOutput, error) {
	nf, err := s.vpcFabric()
	if err != nil {
		return nil, err
	}
	if len(in.SecurityGroupRuleIDs) > 0 {
		return nil, errdefs.InvalidParameter("InvalidParameterValue", "SecurityGroupRuleIds belong to Revoke, not Authorize")
	}
	tg, err := specTags(in.TagSpecifications, "security-group-rule")
	if err != nil {
		return nil, err
	}
	if err := s.checkTaggable(len(tg), "sgr-"); err != nil {
		return nil, err
	}
	perms, err := permissions(in)
	if err != nil {
		return nil, err
	}
	acct := c.Principal.AccountID
	g, err := s.resolveGroupID(ctx, nf, acct, in)
	if err != nil {
		return nil, err
	}
	added, err := nf.AuthorizeSecurityGroup(ctx, acct, g.ID, egress, perms)
	if err != nil {
		return nil, err
	}
	out := &AuthorizeSGOutput{Return: true, SecurityGroupRules: []SecurityGroupRule{}}
	for _, r := range added {
		m, err := s.applySpecTags(ctx, acct, r.ID, tg)
		if err != nil {
			return nil, err
		}
		out.SecurityGroupRules = append(out.SecurityGroupRules, ruleOut(c, g, r, egress, m))
	}
	return out, nil
}

func (s *Server) revokeIngress(ctx context.Context, c *Call, in *SGPermissionsInput) (*RevokeSGOutput, error) {
	return s.revoke(ctx, c, in, false)
}

func (s *Server) revokeEgress(ctx context.Context, c *Call, in *SGPermissionsInput) (*RevokeSGOutput, error) {
	return s.revoke(ctx, c, in, true)
}

func (s *Server) revoke(ctx context.Context, c *Call, in *SGPermissionsInput, egress bool) (*RevokeSGOutput, error) {
	nf, err := s.vpcFabric()
	if err != nil {
		return nil, err
	}
	perms, err := permissions(in)
	if err != nil {
		return nil, err
	}
	acct := c.Principal.AccountID
	g, err := s.resolveGroupID(ctx, nf, acct, in)
	if err != nil {
		return nil, err
	}
	res, err := nf.RevokeSecurityGroup(ctx, acct, g.ID, egress, perms, in.SecurityGroupRuleIDs)
	if err != nil {
		return nil, err
	}
	out := &RevokeSGOutput{Return: true, RevokedSecurityGroupRules: []RevokedSecurityGroupRule{}}
	for _, r := range res.Revoked {
		out.RevokedSecurityGroupRules = append(out.RevokedSecurityGroupRules, RevokedSecurityGroupRule{
			SecurityGroupRuleID: r.ID, GroupID: g.ID, IsEgress: egress, IPProtocol: r.Protocol,
			FromPort: int32(r.FromPort), ToPort: int32(r.ToPort), CidrIPv4: optStr(r.CIDR),
			ReferencedGroupID: optStr(r.GroupID), Description: optStr(r.Description)})
		if s.opts.Tags != nil {
			if err := s.opts.Tags.Forget(ctx, acct, r.ID); err != nil {
				return nil, err
			}
		}
	}
	if len(res.Unknown) > 0 {
		out.UnknownIPPermissions = groupPermissions(acct, res.Unknown)
	}
	return out, nil
}

// hasPorts tells whether Describe shows FromPort/ToPort for a protocol:
// AWS leaves them out for -1 and for protocols without ports.
func hasPorts(proto string) bool {
	switch proto {
	case "tcp", "udp", "icmp", "icmpv6":
		return true
	}
	return false
}

// groupPermissions groups rules back into IpPermissions as AWS shows
// them: one per (protocol, ports), in order of first appearance, with all
// its CIDRs and groups.
func groupPermissions(acct string, rules []netfab.SGRule) []IPPermission {
	type key struct {
		proto    string
		from, to int
	}
	out := []IPPermission{}
	at := map[key]int{}
	for _, r := range rules {
		k := key{r.Protocol, r.FromPort, r.ToPort}
		i, ok := at[k]
		if !ok {
			p := IPPermission{IPProtocol: r.Protocol, UserIDGroupPairs: []UserIDGroupPair{}, IPRanges: []IPRange{},
				IPv6Ranges: []IPv6Range{}, PrefixListIDs: []PrefixListID{}}
			if hasPorts(r.Protocol) {
				from, to := int32(r.FromPort), int32(r.ToPort)
				p.FromPort, p.ToPort = &from, &to
			}
			i = len(out)
			at[k] = i
			out = append(out, p)
		}
		if r.CIDR != "" {
			out[i].IPRanges = append(out[i].IPRanges, IPRange{CidrIP: r.CIDR, Description: optStr(r.Description)})
		}
		if r.GroupID != "" {
			gid, uid := r.GroupID, acct
			out[i].UserIDGroupPairs = append(out[i].UserIDGroupPairs, UserIDGroupPair{GroupID: &gid, UserID: &uid, Description: optStr(r.Description)})
		}
	}
	return out
}

// DescribeSecurityGroupsInput is the EC2 DescribeSecurityGroups request.
type DescribeSecurityGroupsInput struct {
	GroupIDs   []string `locationName:"GroupId" locationNameList:"groupId"`
	GroupNames []string `locationName:"GroupName" locationNameList:"GroupName"`
	NextToken  *string
	MaxResults *int32
	Filters    []Filter `locationName:"Filter"`
}

// DescribeSecurityGroupsOutput is the EC2 DescribeSecurityGroups response.
type DescribeSecurityGroupsOutput struct {
	NextToken      *string             `locationName:"nextToken"`
	SecurityGroups []SecurityGroupInfo `locationName:"securityGroupInfo" locationNameList:"item"`
}

// SecurityGroupInfo is one group in DescribeSecurityGroups.
type SecurityGroupInfo struct {
	GroupID             string         `locationName:"groupId"`
	IPPermissionsEgress []IPPermission `locationName:"ipPermissionsEgress" locationNameList:"item"`
	Tags                []TagItem      `locationName:"tagSet" locationNameList:"item"`
	VpcID               string         `locationName:"vpcId"`
	SecurityGroupArn    string         `locationName:"securityGroupArn"`
	OwnerID             string         `locationName:"ownerId"`
	GroupName           string         `locationName:"groupName"`
	Description         string         `locationName:"groupDescription"`
	IPPermissions       []IPPermission `locationName:"ipPermissions" locationNameList:"item"`
}

type sgWithTags struct {
	netfab.SecurityGroup
	tags map[string]string
}

// permFilters are the ip-permission.* (and egress.ip-permission.*)
// filters on one direction's rules.
func permFilters(fields filterFields[sgWithTags], prefix string, rulesOf func(sgWithTags) []netfab.SGRule) {
	each := func(fn func(netfab.SGRule) string) func(sgWithTags) []string {
		return func(g sgWithTags) []string {
			var out []string
			for _, r := range rulesOf(g) {
				if v := fn(r); v != "" {
					out = append(out, v)
				}
			}
			return out
		}
	}
	fields[prefix+"protocol"] = each(func(r netfab.SGRule) string { return r.Protocol })
	fields[prefix+"from-port"] = each(func(r netfab.SGRule) string { return strconv.Itoa(r.FromPort) })
	fields[prefix+"to-port"] = each(func(r netfab.SGRule) string { return strconv.Itoa(r.ToPort) })
	fields[prefix+"cidr"] = each(func(r netfab.SGRule) string { return r.CIDR })
	fields[prefix+"group-id"] = each(func(r netfab.SGRule) string { return r.GroupID })
}

var sgFilters = func() filterFields[sgWithTags] {
	f := filterFields[sgWithTags]{
		"group-id":    func(g sgWithTags) []string { return []string{g.ID} },
		"group-name":  func(g sgWithTags) []string { return []string{g.Name} },
		"vpc-id":      func(g sgWithTags) []string { return []string{g.VPCID} },
		"description": func(g sgWithTags) []string { return []string{g.Description} },
		"owner-id":    func(g sgWithTags) []string { return []string{g.AccountID} },
	}
	permFilters(f, "ip-permission.", func(g sgWithTags) []netfab.SGRule { return g.Ingress })
	permFilters(f, "egress.ip-permission.", func(g sgWithTags) []netfab.SGRule { return g.Egress })
	return f
}()

func (s *Server) describeSecurityGroups(ctx context.Context, c *Call, in *DescribeSecurityGroupsInput) (*DescribeSecurityGroupsOutput, error) {
	nf, err := s.vpcFabric()
	if err != nil {
		return nil, err
	}
	acct := c.Principal.AccountID
	gs, err := nf.SecurityGroups(ctx, acct)
	if err != nil {
		return nil, err
	}
	gs, err = selectByName(gs, in.GroupIDs, func(g netfab.SecurityGroup) string { return g.ID }, func(n string) error {
		return errdefs.NotFound("InvalidGroup.NotFound", "The security group '%s' does not exist", n)
	})
	if err != nil {
		return nil, err
	}
	if len(in.GroupNames) > 0 {
		// GroupName names groups of the default VPC, as in AWS; other
		// VPCs' groups are found with the group-name filter.
		var keep []netfab.SecurityGroup
		for _, n := range in.GroupNames {
			g, err := nf.SecurityGroup(ctx, acct, "", n)
			if err != nil {
				return nil, err
			}
			for _, x := range gs {
				if x.ID == g.ID {
					keep = append(keep, x)
				}
			}
		}
		gs = keep
	}
	items := make([]sgWithTags, 0, len(gs))
	for _, g := range gs {
		m, err := s.tagsOf(ctx, acct, g.ID)
		if err != nil {
			return nil, err
		}
		items = append(items, sgWithTags{SecurityGroup: g, tags: m})
	}
	items, err = applyFiltersWithTags(items, in.Filters, sgFilters, func(g sgWithTags) map[string]string { return g.tags })
	if err != nil {
		return nil, err
	}
	items, next, err := pageByID(items, func(g sgWithTags) string { return g.ID }, in.MaxResults, in.NextToken, 5, 1000)
	if err != nil {
		return nil, err
	}
	out := &DescribeSecurityGroupsOutput{NextToken: next, SecurityGroups: []SecurityGroupInfo{}}
	for _, g := range items {
		out.SecurityGroups = append(out.SecurityGroups, SecurityGroupInfo{
			GroupID: g.ID, IPPermissionsEgress: groupPermissions(acct, g.Egress), Tags: tagSet(g.tags), VpcID: g.VPCID,
			SecurityGroupArn: ec2ARN(c, acct, "security-group/"+g.ID), OwnerID: acct, GroupName: g.Name,
			Description: g.Description, IPPermissions: groupPermissions(acct, g.Ingress),
		})
	}
	return out, nil
}

// DescribeSecurityGroupRulesInput is the EC2 DescribeSecurityGroupRules request.
type DescribeSecurityGroupRulesInput struct {
	Filters              []Filter `locationName:"Filter"`
	SecurityGroupRuleIDs []string `locationName:"SecurityGroupRuleId" locationNameList:"item"`
	NextToken            *string
	MaxResults           *int32
}

// DescribeSecurityGroupRulesOutput is the EC2 DescribeSecurityGroupRules response.
type DescribeSecurityGroupRulesOutput struct {
	SecurityGroupRules []SecurityGroupRule `locationName:"securityGroupRuleSet" locationNameList:"item"`
	NextToken          *string             `locationName:"nextToken"`
}

type ruleWithTags struct {
	group  netfab.SecurityGroup
	rule   netfab.SGRule
	egress bool
	tags   map[string]string
}

var sgRuleFilters = filterFields[ruleWithTags]{
	"group-id":               func(r ruleWithTags) []string { return []string{r.group.ID} },
	"security-group-rule-id": func(r ruleWithTags) []string { return []string{r.rule.ID} },
}

func (s *Server) describeSecurityGroupRules(ctx context.Context, c *Call, in *DescribeSecurityGroupRulesInput) (*DescribeSecurityGroupRulesOutput, error) {
	nf, err := s.vpcFabric()
	if err != nil {
		return nil, err
	}
	acct := c.Principal.AccountID
	gs, err := nf.SecurityGroups(ctx, acct)
	if err != nil {
		return nil, err
	}
	var items []ruleWithTags
	for _, g := range gs {
		for _, dir := range []struct {
			rules  []netfab.SGRule
			egress bool
		}{{g.Ingress, false}, {g.Egress, true}} {
			for _, r := range dir.rules {
				m, err := s.tagsOf(ctx, acct, r.ID)
				if err != nil {
					return nil, err
				}
				items = append(items, ruleWithTags{group: g, rule: r, egress: dir.egress, tags: m})
			}
		}
	}
	sort.Slice(items, func(i, j int) bool { return items[i].rule.ID < items[j].rule.ID })
	items, err = selectByName(items, in.SecurityGroupRuleIDs, func(r ruleWithTags) string { return r.rule.ID }, func(n string) error {
		return errdefs.NotFound("InvalidSecurityGroupRuleId.NotFound", "The security group rule ID '%s' does not exist", n)
	})
	if err != nil {
		return nil, err
	}
	items, err = applyFiltersWithTags(items, in.Filters, sgRuleFilters, func(r ruleWithTags) map[string]string { return r.tags })
	if err != nil {
		return nil, err
	}
	items, next, err := pageByID(items, func(r ruleWithTags) string { return r.rule.ID }, in.MaxResults, in.NextToken, 5, 1000)
	if err != nil {
		return nil, err
	}
	out := &DescribeSecurityGroupRulesOutput{SecurityGroupRules: []SecurityGroupRule{}, NextToken: next}
	for _, r := range items {
		out.SecurityGroupRules = append(out.SecurityGroupRules, ruleOut(c, r.group, r.rule, r.egress, r.tags))
	}
	return out, nil
}

// ModifySecurityGroupRulesInput is the EC2 ModifySecurityGroupRules request.
type ModifySecurityGroupRulesInput struct {
	GroupID            string                    `locationName:"GroupId" required:"true"`
	SecurityGroupRules []SecurityGroupRuleUpdate `locationName:"SecurityGroupRule" required:"true"`
}

// SecurityGroupRuleUpdate names a rule and what it becomes.
type SecurityGroupRuleUpdate struct {
	SecurityGroupRuleID string                    `locationName:"SecurityGroupRuleId" required:"true"`
	SecurityGroupRule   *SecurityGroupRuleRequest `locationName:"SecurityGroupRule"`
}

// SecurityGroupRuleRequest is a rule's new protocol, ports and peer.
type SecurityGroupRuleRequest struct {
	IPProtocol        string `locationName:"IpProtocol"`
	FromPort          *int32 `locationName:"FromPort"`
	ToPort            *int32 `locationName:"ToPort"`
	CidrIPv4          string `locationName:"CidrIpv4"`
	CidrIPv6          string `locationName:"CidrIpv6"`
	PrefixListID      string `locationName:"PrefixListId"`
	ReferencedGroupID string `locationName:"ReferencedGroupId"`
	Description       string `locationName:"Description"`
}

func (s *Server) modifySecurityGroupRules(ctx context.Context, c *Call, in *ModifySecurityGroupRulesInput) (*ReturnOutput, error) {
	nf, err := s.vpcFabric()
	if err != nil {
		return nil, err
	}
	var ups []netfab.RuleUpdate
	for _, u := range in.SecurityGroupRules {
		if u.SecurityGroupRule == nil {
			return nil, errdefs.New(errdefs.ClassMissingParameter, "MissingParameter", "rule %s: give its SecurityGroupRule (protocol, ports, peer)", u.SecurityGroupRuleID)
		}
		r := u.SecurityGroupRule
		if r.PrefixListID != "" {
			return nil, errdefs.InvalidParameter("InvalidParameterValue", "prefix lists are not supported in labcloud VPCs: remove PrefixListId")
		}
		var peers []netfab.Peer
		if r.CidrIPv4 != "" {
			peers = append(peers, netfab.Peer{CIDR: r.CidrIPv4, Description: r.Description})
		}
		if r.CidrIPv6 != "" {
			peers = append(peers, netfab.Peer{IPv6CIDR: r.CidrIPv6, Description: r.Description})
		}
		if r.ReferencedGroupID != "" {
			peers = append(peers, netfab.Peer{GroupID: r.ReferencedGroupID, Description: r.Description})
		}
		ups = append(ups, netfab.RuleUpdate{RuleID: u.SecurityGroupRuleID,
			Rule: netfab.Permission{Protocol: r.IPProtocol, FromPort: optInt(r.FromPort), ToPort: optInt(r.ToPort), Peers: peers}})
	}
	if err := nf.ModifySecurityGroupRules(ctx, c.Principal.AccountID, in.GroupID, ups); err != nil {
		return nil, err
	}
	return &ReturnOutput{Return: true}, nil
}

// ENIStringAttribute is an EC2 string attribute (Description.Value).
type ENIStringAttribute struct {
	Value *string `locationName:"value"`
}

// ENIBoolAttribute is an EC2 boolean attribute (SourceDestCheck.Value).
type ENIBoolAttribute struct {
	Value *bool `locationName:"value"`
}

// ModifyNetworkInterfaceAttributeInput is the EC2
// ModifyNetworkInterfaceAttribute request. labcloud changes Description,
// SourceDestCheck and the security groups; the other attributes are
// refused by name.
type ModifyNetworkInterfaceAttributeInput struct {
	NetworkInterfaceID       string              `locationName:"networkInterfaceId" required:"true"`
	Description              *ENIStringAttribute `locationName:"description"`
	SourceDestCheck          *ENIBoolAttribute   `locationName:"sourceDestCheck"`
	Groups                   []string            `locationName:"SecurityGroupId" locationNameList:"SecurityGroupId"`
	AttachmentChanges        *AttachmentChanges  `locationName:"attachment"`
	EnablePrimaryIPv6        *bool               `locationName:"EnablePrimaryIpv6"`
	AssociatePublicIPAddress *bool               `locationName:"AssociatePublicIpAddress"`
	AssociatedSubnetIDs      []string            `locationName:"AssociatedSubnetId" locationNameList:"AssociatedSubnetId"`
}

// AttachmentChanges is ModifyNetworkInterfaceAttribute's Attachment
// (decoded only to be refused: labcloud interfaces do not detach).
type AttachmentChanges struct {
	AttachmentID         *string `locationName:"attachmentId"`
	DeleteOnTermination  *bool   `locationName:"deleteOnTermination"`
	DefaultEnaQueueCount *bool
	EnaQueueCount        *int32
}

func (s *Server) modifyNetworkInterfaceAttribute(ctx context.Context, c *Call, in *ModifyNetworkInterfaceAttributeInput) (*ReturnOutput, error) {
	nf, err := s.vpcFabric()
	if err != nil {
		return nil, err
	}
	if in.AttachmentChanges != nil || in.EnablePrimaryIPv6 != nil || in.AssociatePublicIPAddress != nil || len(in.AssociatedSubnetIDs) > 0 {
		return nil, errdefs.New(errdefs.ClassNotImplemented, "Unsupported", "labcloud modifies only Description, SourceDestCheck and the security groups of a network interface")
	}
	ch := netfab.ENIChange{Groups: in.Groups}
	if in.Description != nil {
		v := strOr(in.Description.Value)
		ch.Description = &v
	}
	if in.SourceDestCheck != nil {
		if in.SourceDestCheck.Value == nil {
			return nil, errdefs.New(errdefs.ClassMissingParameter, "MissingParameter", "SourceDestCheck needs a Value (true or false)")
		}
		ch.SourceDestCheck = in.SourceDestCheck.Value
	}
	n := 0
	for _, set := range []bool{ch.Description != nil, ch.SourceDestCheck != nil, len(ch.Groups) > 0} {
		if set {
			n++
		}
	}
	if n != 1 {
		return nil, errdefs.InvalidParameter("InvalidParameterCombination", "give exactly one of Description, SourceDestCheck or SecurityGroupId.N per request")
	}
	if _, err := nf.ModifyENI(ctx, c.Principal.AccountID, in.NetworkInterfaceID, ch); err != nil {
		return nil, err
	}
	return &ReturnOutput{Return: true}, nil
}

// vpcSecurityTables adds the security group, network ACL and network
// interface attribute actions: resources as the EC2 service authorization
// reference names them (security-group/<id>, network-acl/<id>,
// network-interface/<id>; "*" for the Describe actions and for a group
// named only by GroupName).
func vpcSecurityTables(all func(*Call, url.Values) []string) {
	for _, a := range []string{"DescribeSecurityGroups", "DescribeSecurityGroupRules", "DescribeNetworkAcls"} {
		actionTable["ec2:"+a] = actionSpec{resources: all}
	}
	byParam := func(kind, param string) func(c *Call, p url.Values) []string {
		return func(c *Call, p url.Values) []string {
			return []string{ec2ARN(c, c.Principal.AccountID, kind+"/"+orStar(p.Get(param)))}
		}
	}
	for _, a := range []string{"DeleteSecurityGroup", "AuthorizeSecurityGroupIngress", "AuthorizeSecurityGroupEgress",
		"RevokeSecurityGroupIngress", "RevokeSecurityGroupEgress", "ModifySecurityGroupRules"} {
		actionTable["ec2:"+a] = actionSpec{resources: byParam("security-group", "GroupId")}
	}
	actionTable["ec2:CreateSecurityGroup"] = actionSpec{resources: func(c *Call, p url.Values) []string {
		return []string{ec2ARN(c, c.Principal.AccountID, "security-group/*"), ec2ARN(c, c.Principal.AccountID, "vpc/"+orStar(p.Get("VpcId")))}
	}}
	actionTable["ec2:CreateNetworkAcl"] = actionSpec{resources: func(c *Call, p url.Values) []string {
		return []string{ec2ARN(c, c.Principal.AccountID, "network-acl/*"), ec2ARN(c, c.Principal.AccountID, "vpc/"+orStar(p.Get("VpcId")))}
	}}
	for _, a := range []string{"DeleteNetworkAcl", "CreateNetworkAclEntry", "ReplaceNetworkAclEntry", "DeleteNetworkAclEntry",
		"ReplaceNetworkAclAssociation"} {
		actionTable["ec2:"+a] = actionSpec{resources: byParam("network-acl", "NetworkAclId")}
	}
	actionTable["ec2:ModifyNetworkInterfaceAttribute"] = actionSpec{resources: byParam("network-interface", "NetworkInterfaceId")}
}

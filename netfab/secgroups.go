package netfab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/labcloud/labcloud/internal/errdefs"
	"github.com/labcloud/labcloud/internal/store"
)

// Security groups: records.go holds the types and keys; this file holds
// the EC2 semantics (validation, duplicates, limits, references). Every
// mutation validates the whole request first, then writes in one Txn
// whose compare-and-swaps make it lose cleanly to a concurrent writer, and
// then calls changed so the kernel follows.

// Limits as AWS's defaults.
const (
	// MaxRulesPerGroup is the limit of inbound and, separately, outbound
	// rules of one security group.
	MaxRulesPerGroup = 60
	// MaxGroupsPerENI is the limit of security groups of one interface.
	MaxGroupsPerENI = 5
)

// SGRequest asks for a new security group.
type SGRequest struct {
	AccountID string
	// VPCID is empty for the account's default VPC.
	VPCID             string
	Name, Description string
}

// Permission is one IpPermission of an Authorize or Revoke request:
// a protocol and port range with the peers it applies to. It becomes one
// SGRule per peer.
type Permission struct {
	// Protocol is tcp, udp, icmp, icmpv6, all, -1 or a number 0-255.
	Protocol string
	// FromPort and ToPort: nil when the request left them out.
	FromPort, ToPort *int
	Peers            []Peer
}

// Peer is one source (ingress) or destination (egress) of a Permission.
type Peer struct {
	CIDR, IPv6CIDR string
	// GroupID or GroupName names a security group of the same VPC.
	GroupID, GroupName string
	Description        string
}

// sgLoaded is a group with the revision it was read at.
type sgLoaded struct {
	SecurityGroup
	rev int64
}

func (f *Fabric) loadSG(ctx context.Context, acct, id string) (sgLoaded, error) {
	g, rev, err := store.Load[SecurityGroup](ctx, f.st, sgKey(acct, id))
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return sgLoaded{}, errdefs.NotFound("InvalidGroup.NotFound", "The security group '%s' does not exist", id)
		}
		return sgLoaded{}, err
	}
	return sgLoaded{g, rev}, nil
}

// sgByName finds a group by name in a VPC.
func (f *Fabric) sgByName(ctx context.Context, acct, vpcID, name string) (sgLoaded, error) {
	var idx sgNameIndex
	if _, err := f.st.Get(ctx, sgNameKey(vpcID, name), &idx); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return sgLoaded{}, errdefs.NotFound("InvalidGroup.NotFound", "The security group '%s' does not exist in VPC '%s'", name, vpcID)
		}
		return sgLoaded{}, err
	}
	g, err := f.loadSG(ctx, acct, idx.GroupID)
	if errdefs.Is(err, errdefs.ClassNotFound) {
		return sgLoaded{}, errdefs.NotFound("InvalidGroup.NotFound", "The security group '%s' does not exist in VPC '%s'", name, vpcID)
	}
	return g, err
}

// SecurityGroup returns a group by ID, or by name in the account's
// default VPC when id is empty (as EC2 resolves GroupName).
func (f *Fabric) SecurityGroup(ctx context.Context, acct, id, name string) (SecurityGroup, error) {
	g, err := f.findSG(ctx, acct, id, name)
	return g.SecurityGroup, err
}

func (f *Fabric) findSG(ctx context.Context, acct, id, name string) (sgLoaded, error) {
	switch {
	case id != "":
		return f.loadSG(ctx, acct, id)
	case name != "":
		vpc, err := f.sgDefaultVPC(ctx, acct)
		if err != nil {
			return sgLoaded{}, err
		}
		g, err := f.sgByName(ctx, acct, vpc.ID, name)
		if errdefs.Is(err, errdefs.ClassNotFound) {
			return sgLoaded{}, errdefs.NotFound("InvalidGroup.NotFound", "The security group '%s' does not exist in default VPC '%s'; name groups of other VPCs by GroupId", name, vpc.ID)
		}
		return g, err
	}
	return sgLoaded{}, errdefs.New(errdefs.ClassMissingParameter, "MissingParameter", "The request must contain the parameter GroupId or GroupName")
}

// sgDefaultVPC is the account's default VPC, created if missing.
func (f *Fabric) sgDefaultVPC(ctx context.Context, acct string) (VPC, error) {
	var idx defaultVPCIndex
	if _, err := f.st.Get(ctx, defaultKey(acct), &idx); err == nil {
		v, _, err := f.loadVPC(ctx, acct, idx.VPCID)
		if err == nil && v.DefaultSecurityGroupID != "" {
			return v, nil
		}
	} else if !errors.Is(err, store.ErrNotFound) {
		return VPC{}, err
	}
	return f.EnsureDefaultVPC(ctx, acct)
}

// SecurityGroupExists tells the tags store whether an sg- id is the
// account's (register it for the "sg-" prefix).
func (f *Fabric) SecurityGroupExists(ctx context.Context, acct, id string) (bool, error) {
	_, err := f.loadSG(ctx, acct, id)
	if errdefs.Is(err, errdefs.ClassNotFound) {
		return false, nil
	}
	return err == nil, err
}

// SecurityGroups lists the account's groups sorted by ID.
func (f *Fabric) SecurityGroups(ctx context.Context, acct string) ([]SecurityGroup, error) {
	gs, err := store.ListAs[SecurityGroup](ctx, f.st, "sgs/"+acct+"/")
	if err != nil {
		return nil, err
	}
	sort.Slice(gs, func(i, j int) bool { return gs[i].ID < gs[j].ID })
	return gs, nil
}

// sgTextOK is the character set AWS allows in a VPC security group's
// name and description (and rule descriptions): a-z, A-Z, 0-9, spaces
// and ._-:/()#,@[]+=&;{}!$*
func sgTextOK(s string) bool {
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case strings.ContainsRune(" ._-:/()#,@[]+=&;{}!$*", r):
		default:
			return false
		}
	}
	return true
}

func checkSGText(what, s string) error {
	if len(s) > 255 {
		return errdefs.InvalidParameter("InvalidParameterValue", "%s is %d characters long; the limit is 255", what, len(s))
	}
	if !sgTextOK(s) {
		return errdefs.InvalidParameter("InvalidParameterValue",
			"Invalid %s '%s': use only a-z, A-Z, 0-9, spaces and ._-:/()#,@[]+=&;{}!$*", what, s)
	}
	return nil
}

// CreateSecurityGroup makes a group in a VPC (the default VPC when
// r.VPCID is empty) with no inbound rules and one outbound rule that
// allows everything, as AWS does.
func (f *Fabric) CreateSecurityGroup(ctx context.Context, r SGRequest) (SecurityGroup, error) {
	switch {
	case r.Name == "":
		return SecurityGroup{}, errdefs.New(errdefs.ClassMissingParameter, "MissingParameter", "The request must contain the parameter GroupName")
	case r.Description == "":
		return SecurityGroup{}, errdefs.New(errdefs.ClassMissingParameter, "MissingParameter", "The request must contain the parameter GroupDescription")
	case strings.HasPrefix(strings.ToLower(r.Name), "sg-"):
		return SecurityGroup{}, errdefs.InvalidParameter("InvalidParameterValue", "Group names may not be in the format sg-*; choose another GroupName")
	}
	if err := checkSGText("GroupName", r.Name); err != nil {
		return SecurityGroup{}, err
	}
	if err := checkSGText("GroupDescription", r.Description); err != nil {
		return SecurityGroup{}, err
	}
	var vpc VPC
	var err error
	if r.VPCID == "" {
		vpc, err = f.sgDefaultVPC(ctx, r.AccountID)
	} else {
		vpc, _, err = f.loadVPC(ctx, r.AccountID, r.VPCID)
		if err == nil && vpc.DefaultSecurityGroupID == "" {
			vpc, err = f.ensureVPCDefaults(ctx, vpc)
		}
	}
	if err != nil {
		return SecurityGroup{}, err
	}
	g := SecurityGroup{ID: newID("sg"), AccountID: r.AccountID, VPCID: vpc.ID, Name: r.Name, Description: r.Description,
		Ingress: []SGRule{}, Egress: []SGRule{{ID: newID("sgr"), Protocol: "-1", FromPort: -1, ToPort: -1, CIDR: "0.0.0.0/0"}}}
	_, err = f.st.Txn(ctx,
		store.OpCreate(sgNameKey(vpc.ID, g.Name), sgNameIndex{GroupID: g.ID}),
		store.OpCreate(sgKey(r.AccountID, g.ID), g))
	if errors.Is(err, store.ErrExists) {
		return SecurityGroup{}, errdefs.AlreadyExists("InvalidGroup.Duplicate", "The security group '%s' already exists for VPC '%s'", g.Name, vpc.ID)
	}
	if err != nil {
		return SecurityGroup{}, fmt.Errorf("recording security group %s: %w", g.Name, err)
	}
	return g, f.changed(ctx, r.AccountID, vpc.ID)
}

// DeleteSecurityGroup deletes a group named by ID, or by name in the
// default VPC. The default group cannot be deleted; a group in use by an
// interface or referenced by another group's rule is a DependencyViolation.
func (f *Fabric) DeleteSecurityGroup(ctx context.Context, acct, id, name string) (SecurityGroup, error) {
	for try := 0; ; try++ {
		g, err := f.findSG(ctx, acct, id, name)
		if err != nil {
			return SecurityGroup{}, err
		}
		if g.IsDefault {
			return SecurityGroup{}, errdefs.InvalidParameter("CannotDelete", "the specified group: \"%s\" name: \"%s\" cannot be deleted by a user: it is the default group of %s", g.ID, g.Name, g.VPCID)
		}
		enis, err := store.ListAs[ENI](ctx, f.st, "enis/"+acct+"/")
		if err != nil {
			return SecurityGroup{}, err
		}
		for _, e := range enis {
			if e.VPCID == g.VPCID && slices.Contains(e.Groups, g.ID) {
				return SecurityGroup{}, errdefs.Conflict("DependencyViolation", "resource %s has a dependent object: network interface %s uses it; move the interface to other groups first", g.ID, e.ID)
			}
		}
		groups, err := f.SecurityGroups(ctx, acct)
		if err != nil {
			return SecurityGroup{}, err
		}
		for _, o := range groups {
			if o.ID == g.ID {
				continue
			}
			for _, r := range append(append([]SGRule{}, o.Ingress...), o.Egress...) {
				if r.GroupID == g.ID {
					return SecurityGroup{}, errdefs.Conflict("DependencyViolation", "resource %s has a dependent object: rule %s of group %s references it; revoke that rule first", g.ID, r.ID, o.ID)
				}
			}
		}
		// DeleteIf on the group: a concurrent authorize that references it,
		// or an interface joining it, rewrites it and makes this fail.
		_, err = f.st.Txn(ctx, store.OpDeleteIf(sgKey(acct, g.ID), g.rev), store.OpDelete(sgNameKey(g.VPCID, g.Name)))
		if err == nil {
			return g.SecurityGroup, f.changed(ctx, acct, g.VPCID)
		}
		if !(errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound)) || try > 8 {
			return SecurityGroup{}, fmt.Errorf("deleting security group %s: %w", g.ID, err)
		}
	}
}

// protoNames maps the protocol numbers EC2 shows by name.
var protoNames = map[string]string{"6": "tcp", "17": "udp", "1": "icmp", "58": "icmpv6"}

// normProtocol turns a request's IpProtocol into the stored form: "-1",
// "tcp", "udp", "icmp", "icmpv6" or a number.
func normProtocol(p string) (string, error) {
	lp := strings.ToLower(strings.TrimSpace(p))
	switch lp {
	case "":
		return "", errdefs.New(errdefs.ClassMissingParameter, "MissingParameter", "The request must contain the parameter IpProtocol (tcp, udp, icmp, icmpv6, -1 or a protocol number)")
	case "-1", "all":
		return "-1", nil
	case "tcp", "udp", "icmp", "icmpv6":
		return lp, nil
	}
	n, err := strconv.Atoi(lp)
	if err != nil || n < -1 || n > 255 {
		return "", errdefs.InvalidParameter("InvalidParameterValue", "Invalid value '%s' for IP protocol. Unknown protocol: use tcp, udp, icmp, icmpv6, -1 or a number 0-255", p)
	}
	if n == -1 {
		return "-1", nil
	}
	if name, ok := protoNames[strconv.Itoa(n)]; ok {
		return name, nil
	}
	return strconv.Itoa(n), nil
}

// normPorts checks a permission's ports for its protocol and returns the
// stored FromPort, ToPort (-1, -1 where the protocol has none).
func normPorts(proto string, from, to *int) (int, int, error) {
	switch proto {
	case "tcp", "udp":
		if from == nil || to == nil {
			return 0, 0, errdefs.InvalidParameter("InvalidParameterValue", "Invalid value 'Must specify both from and to ports with TCP/UDP.' for portRange")
		}
		if *from < 0 || *from > 65535 || *to < 0 || *to > 65535 {
			return 0, 0, errdefs.InvalidParameter("InvalidParameterValue", "Invalid port range %d-%d: %s ports are 0-65535", *from, *to, strings.ToUpper(proto))
		}
		if *from > *to {
			return 0, 0, errdefs.InvalidParameter("InvalidParameterValue", "Invalid port range %d-%d: FromPort must not be greater than ToPort", *from, *to)
		}
		return *from, *to, nil
	case "icmp", "icmpv6":
		if from == nil || to == nil {
			return 0, 0, errdefs.InvalidParameter("InvalidParameterValue", "Invalid value 'Must specify both ICMP type (FromPort) and code (ToPort); -1 means any' for icmp")
		}
		if *from < -1 || *from > 255 || *to < -1 || *to > 255 {
			return 0, 0, errdefs.InvalidParameter("InvalidParameterValue", "Invalid ICMP type %d or code %d: each is -1 (any) or 0-255", *from, *to)
		}
		if *from == -1 && *to != -1 {
			return 0, 0, errdefs.InvalidParameter("InvalidParameterValue", "Invalid ICMP code %d: with all ICMP types (-1) the code must be -1 as well", *to)
		}
		return *from, *to, nil
	}
	// -1 and other protocols have no ports: every port matches.
	return -1, -1, nil
}

// ruleCIDR checks an IPv4 CIDR and returns it in canonical form.
func ruleCIDR(param, s string) (string, error) {
	p, err := netip.ParsePrefix(strings.TrimSpace(s))
	if err != nil || !p.Addr().Is4() {
		return "", errdefs.InvalidParameter("InvalidParameterValue", "Value (%s) for parameter %s is invalid: give an IPv4 CIDR such as 10.0.0.0/16", s, param)
	}
	return p.Masked().String(), nil
}

// noIPv6 is the answer to any IPv6 range: labcloud VPCs are IPv4.
func noIPv6(what string) error {
	return errdefs.InvalidParameter("InvalidParameterValue", "IPv6 is not supported in labcloud VPCs: remove %s (labcloud VPCs have no IPv6 CIDR)", what)
}

// toRules validates perms against a group g and turns them into rules,
// one per (permission, peer), without IDs. The peer groups it names must
// be in g's VPC; they are returned so the caller can guard them.
func (f *Fabric) toRules(ctx context.Context, g sgLoaded, perms []Permission) ([]SGRule, map[string]sgLoaded, error) {
	peers := map[string]sgLoaded{}
	var out []SGRule
	if len(perms) == 0 {
		return nil, nil, errdefs.New(errdefs.ClassMissingParameter, "MissingParameter", "The request must contain the parameter IpPermissions")
	}
	for _, p := range perms {
		proto, err := normProtocol(p.Protocol)
		if err != nil {
			return nil, nil, err
		}
		from, to, err := normPorts(proto, p.FromPort, p.ToPort)
		if err != nil {
			return nil, nil, err
		}
		if len(p.Peers) == 0 {
			return nil, nil, errdefs.New(errdefs.ClassMissingParameter, "MissingParameter", "Each IpPermission needs at least one IpRanges CidrIp or UserIdGroupPairs GroupId")
		}
		for _, peer := range p.Peers {
			r := SGRule{Protocol: proto, FromPort: from, ToPort: to, Description: peer.Description}
			if err := checkSGText("rule description", peer.Description); err != nil {
				return nil, nil, err
			}
			switch {
			case peer.IPv6CIDR != "":
				return nil, nil, noIPv6("Ipv6Ranges")
			case peer.CIDR != "":
				if r.CIDR, err = ruleCIDR("CidrIp", peer.CIDR); err != nil {
					return nil, nil, err
				}
			case peer.GroupID != "" || peer.GroupName != "":
				var pg sgLoaded
				if peer.GroupID != "" {
					pg, err = f.loadSG(ctx, g.AccountID, peer.GroupID)
				} else {
					pg, err = f.sgByName(ctx, g.AccountID, g.VPCID, peer.GroupName)
				}
				if err != nil {
					return nil, nil, err
				}
				if pg.VPCID != g.VPCID {
					return nil, nil, errdefs.NotFound("InvalidGroup.NotFound", "The security group '%s' does not exist in VPC '%s': rules may reference groups of the same VPC only", pg.ID, g.VPCID)
				}
				r.GroupID = pg.ID
				if pg.ID != g.ID {
					peers[pg.ID] = pg
				}
			default:
				return nil, nil, errdefs.New(errdefs.ClassMissingParameter, "MissingParameter", "Each peer needs a CidrIp or a GroupId")
			}
			out = append(out, r)
		}
	}
	return out, peers, nil
}

// sameRule is AWS's identity of a rule: everything but its ID and
// description.
func sameRule(a, b SGRule) bool {
	return a.Protocol == b.Protocol && a.FromPort == b.FromPort && a.ToPort == b.ToPort && a.CIDR == b.CIDR && a.GroupID == b.GroupID
}

// describeRule is how a duplicate or unknown rule is named in errors.
func describeRule(r SGRule) string {
	peer := r.CIDR
	if r.GroupID != "" {
		peer = r.GroupID
	}
	proto := strings.ToUpper(r.Protocol)
	if r.Protocol == "-1" {
		proto = "ALL"
	}
	return fmt.Sprintf("peer: %s, %s, from port: %d, to port: %d, ALLOW", peer, proto, r.FromPort, r.ToPort)
}

func rulesOf(g *SecurityGroup, egress bool) *[]SGRule {
	if egress {
		return &g.Egress
	}
	return &g.Ingress
}

// guardOps re-writes the peer groups unchanged under a compare-and-swap:
// a group deleted meanwhile (or changed) fails the Txn, so a rule never
// ends up referencing a group that is gone.
func guardOps(acct string, peers map[string]sgLoaded) []store.Op {
	var ops []store.Op
	ids := make([]string, 0, len(peers))
	for id := range peers {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		ops = append(ops, store.OpCompareAndSwap(sgKey(acct, id), peers[id].SecurityGroup, peers[id].rev))
	}
	return ops
}

// AuthorizeSecurityGroup adds rules to a group's inbound (egress false) or
// outbound rules and returns the new rules. Everything is checked before
// anything is written: one duplicate (InvalidPermission.Duplicate) or
// going over MaxRulesPerGroup (RulesPerSecurityGroupLimitExceeded) adds
// nothing.
func (f *Fabric) AuthorizeSecurityGroup(ctx context.Context, acct, groupID string, egress bool, perms []Permission) ([]SGRule, error) {
	for try := 0; ; try++ {
		g, err := f.loadSG(ctx, acct, groupID)
		if err != nil {
			return nil, err
		}
		add, peers, err := f.toRules(ctx, g, perms)
		if err != nil {
			return nil, err
		}
		rules := rulesOf(&g.SecurityGroup, egress)
		for i, r := range add {
			for _, old := range *rules {
				if sameRule(old, r) {
					return nil, errdefs.AlreadyExists("InvalidPermission.Duplicate", "the specified rule \"%s\" already exists (rule %s)", describeRule(r), old.ID)
				}
			}
			for _, o := range add[:i] {
				if sameRule(o, r) {
					return nil, errdefs.AlreadyExists("InvalidPermission.Duplicate", "the specified rule \"%s\" is given twice in this request", describeRule(r))
				}
			}
		}
		if len(*rules)+len(add) > MaxRulesPerGroup {
			dir := "inbound"
			if egress {
				dir = "outbound"
			}
			return nil, errdefs.LimitExceeded("RulesPerSecurityGroupLimitExceeded",
				"The maximum number of rules per security group has been reached: %s has %d %s rules, this request adds %d, the limit is %d",
				g.ID, len(*rules), dir, len(add), MaxRulesPerGroup)
		}
		for i := range add {
			add[i].ID = newID("sgr")
		}
		*rules = append(*rules, add...)
		ops := append([]store.Op{store.OpCompareAndSwap(sgKey(acct, g.ID), g.SecurityGroup, g.rev)}, guardOps(acct, peers)...)
		_, err = f.st.Txn(ctx, ops...)
		if err == nil {
			return add, f.changed(ctx, acct, g.VPCID)
		}
		if !errors.Is(err, store.ErrConflict) || try > 8 {
			return nil, fmt.Errorf("updating security group %s: %w", g.ID, err)
		}
	}
}

// RevokeResult is what a Revoke removed and what it did not find.
type RevokeResult struct {
	Revoked []SGRule
	// Unknown are the permissions that matched no rule (only in the
	// default VPC; elsewhere they are an InvalidPermission.NotFound).
	Unknown []SGRule
}

// RevokeSecurityGroup removes rules named by properties (perms) or by ID
// (ruleIDs). As AWS: in the default VPC, permissions that match no rule
// are reported in Unknown and the rest are revoked; in any other VPC they
// are an InvalidPermission.NotFound and nothing is revoked. An unknown
// rule ID is InvalidSecurityGroupRuleId.NotFound.
func (f *Fabric) RevokeSecurityGroup(ctx context.Context, acct, groupID string, egress bool, perms []Permission, ruleIDs []string) (RevokeResult, error) {
	if len(perms) == 0 && len(ruleIDs) == 0 {
		return RevokeResult{}, errdefs.New(errdefs.ClassMissingParameter, "MissingParameter", "The request must contain IpPermissions or SecurityGroupRuleIds")
	}
	for try := 0; ; try++ {
		g, err := f.loadSG(ctx, acct, groupID)
		if err != nil {
			return RevokeResult{}, err
		}
		var want []SGRule
		if len(perms) > 0 {
			if want, _, err = f.toRules(ctx, g, perms); err != nil {
				return RevokeResult{}, err
			}
		}
		rules := rulesOf(&g.SecurityGroup, egress)
		drop := map[string]bool{}
		var res RevokeResult
		for _, id := range ruleIDs {
			found := false
			for _, r := range *rules {
				if r.ID == id {
					found = true
					if !drop[id] {
						drop[id] = true
						res.Revoked = append(res.Revoked, r)
					}
				}
			}
			if !found {
				return RevokeResult{}, errdefs.NotFound("InvalidSecurityGroupRuleId.NotFound", "The security group rule ID '%s' does not exist in the %s rules of %s", id, ruleDirection(egress), g.ID)
			}
		}
		for _, w := range want {
			found := false
			for _, r := range *rules {
				if sameRule(r, w) {
					found = true
					if !drop[r.ID] {
						drop[r.ID] = true
						res.Revoked = append(res.Revoked, r)
					}
				}
			}
			if !found {
				res.Unknown = append(res.Unknown, w)
			}
		}
		if len(res.Unknown) > 0 {
			vpc, _, err := f.loadVPC(ctx, acct, g.VPCID)
			if err != nil {
				return RevokeResult{}, err
			}
			if !vpc.IsDefault {
				return RevokeResult{}, errdefs.NotFound("InvalidPermission.NotFound",
					"The specified rule does not exist in this security group: \"%s\" is not among the %s rules of %s", describeRule(res.Unknown[0]), ruleDirection(egress), g.ID)
			}
		}
		if len(drop) == 0 {
			return res, nil
		}
		kept := []SGRule{}
		for _, r := range *rules {
			if !drop[r.ID] {
				kept = append(kept, r)
			}
		}
		*rules = kept
		_, err = f.st.Txn(ctx, store.OpCompareAndSwap(sgKey(acct, g.ID), g.SecurityGroup, g.rev))
		if err == nil {
			return res, f.changed(ctx, acct, g.VPCID)
		}
		if !errors.Is(err, store.ErrConflict) || try > 8 {
			return RevokeResult{}, fmt.Errorf("updating security group %s: %w", g.ID, err)
		}
	}
}

func ruleDirection(egress bool) string {
	if egress {
		return "outbound"
	}
	return "inbound"
}

// ValidateGroups checks the security groups asked for an interface in a
// VPC and returns them deduplicated in request order; none means the
// VPC's default group. Unknown groups or groups of another VPC are
// InvalidGroup.NotFound; more than MaxGroupsPerENI is
// SecurityGroupsPerInterfaceLimitExceeded.
func (f *Fabric) ValidateGroups(ctx context.Context, acct, vpcID string, groupIDs []string) ([]string, error) {
	_, out, err := f.validateGroups(ctx, acct, vpcID, groupIDs)
	return out, err
}

func (f *Fabric) validateGroups(ctx context.Context, acct, vpcID string, groupIDs []string) ([]sgLoaded, []string, error) {
	if len(groupIDs) == 0 {
		vpc, _, err := f.loadVPC(ctx, acct, vpcID)
		if err != nil {
			return nil, nil, err
		}
		if vpc.DefaultSecurityGroupID == "" {
			if vpc, err = f.ensureVPCDefaults(ctx, vpc); err != nil {
				return nil, nil, err
			}
		}
		groupIDs = []string{vpc.DefaultSecurityGroupID}
	}
	var out []string
	var loaded []sgLoaded
	for _, id := range groupIDs {
		if id == "" {
			return nil, nil, errdefs.InvalidParameter("InvalidParameterValue", "an empty security group ID was given")
		}
		if slices.Contains(out, id) {
			continue
		}
		g, err := f.loadSG(ctx, acct, id)
		if err != nil {
			return nil, nil, err
		}
		if g.VPCID != vpcID {
			return nil, nil, errdefs.InvalidParameter("InvalidParameterValue", "Security group %s and the interface belong to different networks: the group is in %s, the interface in %s", id, g.VPCID, vpcID)
		}
		out = append(out, id)
		loaded = append(loaded, g)
	}
	if len(out) > MaxGroupsPerENI {
		return nil, nil, errdefs.LimitExceeded("SecurityGroupsPerInterfaceLimitExceeded", "an interface may have at most %d security groups; %d were given", MaxGroupsPerENI, len(out))
	}
	return loaded, out, nil
}

// ENIChange is a ModifyNetworkInterfaceAttribute: nil fields stay.
type ENIChange struct {
	Description     *string
	SourceDestCheck *bool
	// Groups replaces the security groups (validated as ValidateGroups,
	// but an empty non-nil list is an error, not the default group).
	Groups []string
}

// SetENIGroups replaces an interface's security groups (1-5 of its VPC).
func (f *Fabric) SetENIGroups(ctx context.Context, acct, eniID string, groups []string) error {
	if len(groups) == 0 {
		return errdefs.New(errdefs.ClassMissingParameter, "MissingParameter", "give at least one security group for %s", eniID)
	}
	_, err := f.ModifyENI(ctx, acct, eniID, ENIChange{Groups: groups})
	return err
}

// ModifyENI changes an interface's description, source/destination check
// or security groups, compare-and-swapping its record (and the groups it
// joins, so none is deleted meanwhile), then brings the kernel in line.
func (f *Fabric) ModifyENI(ctx context.Context, acct, eniID string, c ENIChange) (ENI, error) {
	for try := 0; ; try++ {
		e, rev, err := store.Load[ENI](ctx, f.st, eniKey(acct, eniID))
		if err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return ENI{}, errdefs.NotFound("InvalidNetworkInterfaceID.NotFound", "The networkInterface ID '%s' does not exist", eniID)
			}
			return ENI{}, err
		}
		var guard []store.Op
		if c.Groups != nil {
			loaded, ids, err := f.validateGroups(ctx, acct, e.VPCID, c.Groups)
			if err != nil {
				return ENI{}, err
			}
			e.Groups = ids
			for _, g := range loaded {
				guard = append(guard, store.OpCompareAndSwap(sgKey(acct, g.ID), g.SecurityGroup, g.rev))
			}
		}
		if c.Description != nil {
			if len(*c.Description) > 255 {
				return ENI{}, errdefs.InvalidParameter("InvalidParameterValue", "Description is longer than 255 characters")
			}
			e.Description = *c.Description
		}
		if c.SourceDestCheck != nil {
			e.NoSourceDestCheck = !*c.SourceDestCheck
		}
		_, err = f.st.Txn(ctx, append([]store.Op{store.OpCompareAndSwap(eniKey(acct, e.ID), e, rev)}, guard...)...)
		if err == nil {
			f.addLease(e) // the runtime copy the metadata service reads
			return e, f.changed(ctx, acct, e.VPCID)
		}
		if !errors.Is(err, store.ErrConflict) || try > 8 {
			return ENI{}, fmt.Errorf("updating network interface %s: %w", eniID, err)
		}
	}
}

// SecurityGroupRuleExists tells the tags store whether an sgr- id is a
// rule of one of the account's groups (register it for "sgr-").
func (f *Fabric) SecurityGroupRuleExists(ctx context.Context, acct, id string) (bool, error) {
	gs, err := f.SecurityGroups(ctx, acct)
	if err != nil {
		return false, err
	}
	for _, g := range gs {
		for _, r := range append(append([]SGRule{}, g.Ingress...), g.Egress...) {
			if r.ID == id {
				return true, nil
			}
		}
	}
	return false, nil
}

// RuleUpdate is one rule of a ModifySecurityGroupRules: the rule keeps
// its ID and direction and takes the protocol, ports and single peer of
// Rule.
type RuleUpdate struct {
	RuleID string
	Rule   Permission
}

// ModifySecurityGroupRules rewrites rules of a group in place. All
// updates are checked first (unknown rule IDs, the same validation as
// Authorize, a result equal to another rule of the same direction) and
// applied together or not at all.
func (f *Fabric) ModifySecurityGroupRules(ctx context.Context, acct, groupID string, updates []RuleUpdate) error {
	if len(updates) == 0 {
		return errdefs.New(errdefs.ClassMissingParameter, "MissingParameter", "The request must contain the parameter SecurityGroupRule")
	}
	for try := 0; ; try++ {
		g, err := f.loadSG(ctx, acct, groupID)
		if err != nil {
			return err
		}
		var peers map[string]sgLoaded
		for _, u := range updates {
			if len(u.Rule.Peers) != 1 {
				return errdefs.InvalidParameter("InvalidParameterValue", "rule %s: give exactly one of CidrIpv4 or ReferencedGroupId", u.RuleID)
			}
			nr, ps, err := f.toRules(ctx, g, []Permission{u.Rule})
			if err != nil {
				return err
			}
			if peers == nil {
				peers = ps
			} else {
				for k, v := range ps {
					peers[k] = v
				}
			}
			found := false
			for _, egress := range []bool{false, true} {
				rules := rulesOf(&g.SecurityGroup, egress)
				for i, r := range *rules {
					if r.ID != u.RuleID {
						continue
					}
					found = true
					for _, o := range *rules {
						if o.ID != r.ID && sameRule(o, nr[0]) {
							return errdefs.AlreadyExists("InvalidPermission.Duplicate", "the specified rule \"%s\" already exists (rule %s)", describeRule(nr[0]), o.ID)
						}
					}
					nr[0].ID = r.ID
					(*rules)[i] = nr[0]
				}
			}
			if !found {
				return errdefs.NotFound("InvalidSecurityGroupRuleId.NotFound", "The security group rule ID '%s' does not exist in %s", u.RuleID, g.ID)
			}
		}
		ops := append([]store.Op{store.OpCompareAndSwap(sgKey(acct, g.ID), g.SecurityGroup, g.rev)}, guardOps(acct, peers)...)
		_, err = f.st.Txn(ctx, ops...)
		if err == nil {
			return f.changed(ctx, acct, g.VPCID)
		}
		if !errors.Is(err, store.ErrConflict) || try > 8 {
			return fmt.Errorf("updating security group %s: %w", g.ID, err)
		}
	}
}

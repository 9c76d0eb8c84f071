package netfab

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/labcloud/labcloud/internal/errdefs"
	"github.com/labcloud/labcloud/internal/store"
)

// Network ACLs: stateless numbered rules per subnet. A subnet's ACL is
// recorded on the subnet (NetworkACLID, NetworkACLAssociationID); a subnet
// with none recorded uses its VPC's default ACL.

// Limits and bounds as AWS's.
const (
	// MaxACLEntries is the limit of inbound and, separately, outbound
	// entries of one network ACL.
	MaxACLEntries = 20
	// MaxACLRuleNumber is the highest rule number a user may give; 32767
	// is the implicit final deny ("*").
	MaxACLRuleNumber = 32766
)

// ACLEntryRequest is a Create/ReplaceNetworkAclEntry.
type ACLEntryRequest struct {
	RuleNumber int
	Egress     bool
	// Protocol is -1, all, tcp, udp, icmp, icmpv6 or a number 0-255.
	Protocol string
	// RuleAction is allow or deny.
	RuleAction     string
	CIDR, IPv6CIDR string
	// Port range for tcp/udp and ICMP type/code for icmp; nil when the
	// request left them out.
	FromPort, ToPort   *int
	ICMPType, ICMPCode *int
}

// ACLAssociation ties a subnet to its network ACL.
type ACLAssociation struct {
	ID, NetworkACLID, SubnetID string
}

func (f *Fabric) loadACL(ctx context.Context, acct, id string) (NetworkACL, int64, error) {
	a, rev, err := store.Load[NetworkACL](ctx, f.st, naclKey(acct, id))
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return NetworkACL{}, 0, errdefs.NotFound("InvalidNetworkAclID.NotFound", "The network ACL ID '%s' does not exist", id)
		}
		return NetworkACL{}, 0, err
	}
	return a, rev, nil
}

// NetworkACLExists tells the tags store whether an acl- id is the
// account's (register it for the "acl-" prefix).
func (f *Fabric) NetworkACLExists(ctx context.Context, acct, id string) (bool, error) {
	_, _, err := f.loadACL(ctx, acct, id)
	if errdefs.Is(err, errdefs.ClassNotFound) {
		return false, nil
	}
	return err == nil, err
}

// CreateNetworkACL makes an ACL in a VPC. It has no entries, so only the
// final "*" rule applies: it denies everything until entries are added.
func (f *Fabric) CreateNetworkACL(ctx context.Context, acct, vpcID string) (NetworkACL, error) {
	if vpcID == "" {
		return NetworkACL{}, errdefs.New(errdefs.ClassMissingParameter, "MissingParameter", "The request must contain the parameter VpcId")
	}
	if _, _, err := f.loadVPC(ctx, acct, vpcID); err != nil {
		return NetworkACL{}, err
	}
	a := NetworkACL{ID: newID("acl"), AccountID: acct, VPCID: vpcID, Entries: []ACLRule{}}
	if _, err := f.st.Create(ctx, naclKey(acct, a.ID), a); err != nil {
		return NetworkACL{}, fmt.Errorf("recording network ACL: %w", err)
	}
	return a, nil // no subnet uses it yet: nothing to change in the kernel
}

// subnetsOfACL lists the account's subnets that use an ACL (explicitly,
// or implicitly as their VPC's default).
func (f *Fabric) subnetsOfACL(ctx context.Context, a NetworkACL) ([]subnetRecord, error) {
	all, err := store.ListAs[subnetRecord](ctx, f.st, "subnets/"+a.AccountID+"/")
	if err != nil {
		return nil, err
	}
	var out []subnetRecord
	for _, s := range all {
		if s.VPCID == a.VPCID && (s.NetworkACLID == a.ID || (s.NetworkACLID == "" && a.IsDefault)) {
			out = append(out, s)
		}
	}
	return out, nil
}

// DeleteNetworkACL deletes an ACL that no subnet uses; the VPC's default
// ACL cannot be deleted.
func (f *Fabric) DeleteNetworkACL(ctx context.Context, acct, id string) error {
	a, rev, err := f.loadACL(ctx, acct, id)
	if err != nil {
		return err
	}
	if a.IsDefault {
		return errdefs.InvalidParameter("InvalidParameterValue", "cannot delete default network ACL %s of %s", a.ID, a.VPCID)
	}
	used, err := f.subnetsOfACL(ctx, a)
	if err != nil {
		return err
	}
	if len(used) > 0 {
		return errdefs.Conflict("DependencyViolation", "The network ACL '%s' has dependencies and cannot be deleted: subnet %s uses it; associate the subnet with another ACL first", a.ID, used[0].ID)
	}
	// DeleteIf: an association made meanwhile rewrites the ACL record
	// (ReplaceNetworkACLAssociation guards it), which fails this delete.
	if err := f.st.DeleteIf(ctx, naclKey(acct, a.ID), rev); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return errdefs.Conflict("IncorrectState", "network ACL %s changed while being deleted; try again", a.ID)
		}
		return err
	}
	return nil
}

// aclProtocol turns a request's protocol into the stored number string.
// The EC2 API accepts the names tcp, udp, icmp (and icmpv6, all) as well.
func aclProtocol(p string) (string, error) {
	lp := strings.ToLower(strings.TrimSpace(p))
	switch lp {
	case "":
		return "", errdefs.New(errdefs.ClassMissingParameter, "MissingParameter", "The request must contain the parameter protocol")
	case "-1", "all":
		return "-1", nil
	case "tcp":
		return "6", nil
	case "udp":
		return "17", nil
	case "icmp":
		return "1", nil
	case "icmpv6":
		return "58", nil
	}
	n, err := strconv.Atoi(lp)
	if err != nil || n < -1 || n > 255 {
		return "", errdefs.InvalidParameter("InvalidParameterValue", "Invalid value '%s' for protocol: use -1 (all), tcp, udp, icmp or a protocol number 0-255", p)
	}
	return strconv.Itoa(n), nil
}

// toACLRule validates an entry request.
func toACLRule(r ACLEntryRequest) (ACLRule, error) {
	if r.RuleNumber < 1 || r.RuleNumber > MaxACLRuleNumber {
		return ACLRule{}, errdefs.InvalidParameter("InvalidParameterValue", "Invalid value '%d' for ruleNumber: rule numbers are 1-%d", r.RuleNumber, MaxACLRuleNumber)
	}
	proto, err := aclProtocol(r.Protocol)
	if err != nil {
		return ACLRule{}, err
	}
	action := strings.ToLower(r.RuleAction)
	if action != "allow" && action != "deny" {
		return ACLRule{}, errdefs.InvalidParameter("InvalidParameterValue", "Invalid value '%s' for ruleAction: use allow or deny", r.RuleAction)
	}
	if r.IPv6CIDR != "" {
		return ACLRule{}, noIPv6("Ipv6CidrBlock")
	}
	if r.CIDR == "" {
		return ACLRule{}, errdefs.New(errdefs.ClassMissingParameter, "MissingParameter", "The request must contain the parameter cidrBlock")
	}
	cidr, err := ruleCIDR("cidrBlock", r.CIDR)
	if err != nil {
		return ACLRule{}, err
	}
	e := ACLRule{RuleNumber: r.RuleNumber, Egress: r.Egress, Protocol: proto, RuleAction: action, CIDR: cidr}
	switch proto {
	case "6", "17":
		if r.FromPort == nil || r.ToPort == nil {
			return ACLRule{}, errdefs.New(errdefs.ClassMissingParameter, "MissingParameter", "TCP and UDP entries need a port range: give PortRange From and To")
		}
		if *r.FromPort < 0 || *r.FromPort > 65535 || *r.ToPort < 0 || *r.ToPort > 65535 || *r.FromPort > *r.ToPort {
			return ACLRule{}, errdefs.InvalidParameter("InvalidParameterValue", "Invalid port range %d-%d: ports are 0-65535 and From must not exceed To", *r.FromPort, *r.ToPort)
		}
		e.FromPort, e.ToPort = *r.FromPort, *r.ToPort
	case "1", "58":
		if r.ICMPType == nil || r.ICMPCode == nil {
			return ACLRule{}, errdefs.New(errdefs.ClassMissingParameter, "MissingParameter", "ICMP entries need IcmpTypeCode Type and Code (-1 for any)")
		}
		if *r.ICMPType < -1 || *r.ICMPType > 255 || *r.ICMPCode < -1 || *r.ICMPCode > 255 {
			return ACLRule{}, errdefs.InvalidParameter("InvalidParameterValue", "Invalid ICMP type %d or code %d: each is -1 (any) or 0-255", *r.ICMPType, *r.ICMPCode)
		}
		e.ICMPType, e.ICMPCode = *r.ICMPType, *r.ICMPCode
	}
	return e, nil
}

// modifyACL is a compare-and-swap read-modify-write of an ACL followed by
// changed for its VPC.
func (f *Fabric) modifyACL(ctx context.Context, acct, id string, fn func(*NetworkACL) error) error {
	for try := 0; ; try++ {
		a, rev, err := f.loadACL(ctx, acct, id)
		if err != nil {
			return err
		}
		if err := fn(&a); err != nil {
			return err
		}
		sort.SliceStable(a.Entries, func(i, j int) bool {
			if a.Entries[i].Egress != a.Entries[j].Egress {
				return !a.Entries[i].Egress
			}
			return a.Entries[i].RuleNumber < a.Entries[j].RuleNumber
		})
		_, err = f.st.CompareAndSwap(ctx, naclKey(acct, id), a, rev)
		if err == nil {
			return f.changed(ctx, acct, a.VPCID)
		}
		if !errors.Is(err, store.ErrConflict) || try > 8 {
			return fmt.Errorf("updating network ACL %s: %w", id, err)
		}
	}
}

func findEntry(a *NetworkACL, n int, egress bool) int {
	for i, e := range a.Entries {
		if e.RuleNumber == n && e.Egress == egress {
			return i
		}
	}
	return -1
}

// CreateNetworkACLEntry adds a numbered entry. A number already used in
// that direction is NetworkAclEntryAlreadyExists; more than MaxACLEntries
// per direction is NetworkAclEntryLimitExceeded.
func (f *Fabric) CreateNetworkACLEntry(ctx context.Context, acct, aclID string, r ACLEntryRequest) error {
	e, err := toACLRule(r)
	if err != nil {
		return err
	}
	return f.modifyACL(ctx, acct, aclID, func(a *NetworkACL) error {
		if findEntry(a, e.RuleNumber, e.Egress) >= 0 {
			return errdefs.AlreadyExists("NetworkAclEntryAlreadyExists", "The network acl entry identified by %d already exists in the %s entries of %s; use ReplaceNetworkAclEntry", e.RuleNumber, ruleDirection(e.Egress), a.ID)
		}
		n := 0
		for _, x := range a.Entries {
			if x.Egress == e.Egress {
				n++
			}
		}
		if n >= MaxACLEntries {
			return errdefs.LimitExceeded("NetworkAclEntryLimitExceeded", "network ACL %s already has %d %s entries, the limit", a.ID, n, ruleDirection(e.Egress))
		}
		a.Entries = append(a.Entries, e)
		return nil
	})
}

// ReplaceNetworkACLEntry replaces an existing numbered entry.
func (f *Fabric) ReplaceNetworkACLEntry(ctx context.Context, acct, aclID string, r ACLEntryRequest) error {
	e, err := toACLRule(r)
	if err != nil {
		return err
	}
	return f.modifyACL(ctx, acct, aclID, func(a *NetworkACL) error {
		i := findEntry(a, e.RuleNumber, e.Egress)
		if i < 0 {
			return errdefs.NotFound("InvalidNetworkAclEntry.NotFound", "The network acl entry identified by %d does not exist in the %s entries of %s", e.RuleNumber, ruleDirection(e.Egress), a.ID)
		}
		a.Entries[i] = e
		return nil
	})
}

// DeleteNetworkACLEntry removes a numbered entry.
func (f *Fabric) DeleteNetworkACLEntry(ctx context.Context, acct, aclID string, ruleNumber int, egress bool) error {
	if ruleNumber < 1 || ruleNumber > MaxACLRuleNumber {
		return errdefs.InvalidParameter("InvalidParameterValue", "Invalid value '%d' for ruleNumber: rule numbers are 1-%d", ruleNumber, MaxACLRuleNumber)
	}
	return f.modifyACL(ctx, acct, aclID, func(a *NetworkACL) error {
		i := findEntry(a, ruleNumber, egress)
		if i < 0 {
			return errdefs.NotFound("InvalidNetworkAclEntry.NotFound", "The network acl entry identified by %d does not exist in the %s entries of %s", ruleNumber, ruleDirection(egress), a.ID)
		}
		a.Entries = append(a.Entries[:i], a.Entries[i+1:]...)
		return nil
	})
}

// ReplaceNetworkACLAssociation moves the subnet of an association to
// another ACL of the same VPC and returns the new association ID.
func (f *Fabric) ReplaceNetworkACLAssociation(ctx context.Context, acct, assocID, aclID string) (string, error) {
	if assocID == "" || aclID == "" {
		return "", errdefs.New(errdefs.ClassMissingParameter, "MissingParameter", "The request must contain the parameters AssociationId and NetworkAclId")
	}
	for try := 0; ; try++ {
		a, arev, err := f.loadACL(ctx, acct, aclID)
		if err != nil {
			return "", err
		}
		kvs, err := f.st.List(ctx, "subnets/"+acct+"/")
		if err != nil {
			return "", err
		}
		var sn subnetRecord
		var rev int64
		for _, kv := range kvs {
			var s subnetRecord
			if err := kv.Decode(&s); err != nil {
				return "", err
			}
			if s.NetworkACLAssociationID == assocID {
				sn, rev = s, kv.ModRevision
				break
			}
		}
		if rev == 0 {
			return "", errdefs.NotFound("InvalidAssociationID.NotFound", "The association ID '%s' does not exist", assocID)
		}
		if sn.VPCID != a.VPCID {
			return "", errdefs.InvalidParameter("InvalidParameterValue", "network ACL %s is in %s but the subnet %s of association %s is in %s", a.ID, a.VPCID, sn.ID, assocID, sn.VPCID)
		}
		sn.NetworkACLID, sn.NetworkACLAssociationID = a.ID, newID("aclassoc")
		// The ACL is rewritten unchanged so that a concurrent delete of it
		// fails instead of leaving the subnet with a missing ACL.
		_, err = f.st.Txn(ctx,
			store.OpCompareAndSwap(subnetKey(acct, sn.ID), sn, rev),
			store.OpCompareAndSwap(naclKey(acct, a.ID), a, arev))
		if err == nil {
			return sn.NetworkACLAssociationID, f.changed(ctx, acct, sn.VPCID)
		}
		if !errors.Is(err, store.ErrConflict) || try > 8 {
			return "", fmt.Errorf("associating subnet %s with %s: %w", sn.ID, a.ID, err)
		}
	}
}

// NetworkACLs lists the account's ACLs (sorted by ID) and the subnet
// associations: each subnet's recorded ACL, or its VPC's default.
func (f *Fabric) NetworkACLs(ctx context.Context, acct string) ([]NetworkACL, []ACLAssociation, error) {
	acls, err := store.ListAs[NetworkACL](ctx, f.st, "nacls/"+acct+"/")
	if err != nil {
		return nil, nil, err
	}
	sort.Slice(acls, func(i, j int) bool { return acls[i].ID < acls[j].ID })
	subnets, err := store.ListAs[subnetRecord](ctx, f.st, "subnets/"+acct+"/")
	if err != nil {
		return nil, nil, err
	}
	defaults := map[string]string{} // VPC → default ACL
	for _, a := range acls {
		if a.IsDefault {
			defaults[a.VPCID] = a.ID
		}
	}
	var assocs []ACLAssociation
	for _, s := range subnets {
		id := s.NetworkACLID
		if id == "" {
			id = defaults[s.VPCID]
		}
		if id == "" {
			continue
		}
		assocs = append(assocs, ACLAssociation{ID: s.NetworkACLAssociationID, NetworkACLID: id, SubnetID: s.ID})
	}
	return acls, assocs, nil
}

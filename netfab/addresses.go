package netfab

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/labcloud/labcloud/internal/errdefs"
	"github.com/labcloud/labcloud/internal/store"
)

// MaxElasticIPsPerAccount is AWS's default quota of Elastic IPs per region.
const MaxElasticIPsPerAccount = 5

// firstPublicHost is the first pool address handed out: base+1 is the
// host end of the public bridge and base+2..9 stay free for the host.
const firstPublicHost = 10

// PublicCIDR is the pool public and Elastic IPs come from.
func (f *Fabric) PublicCIDR() string { return f.pub.String() }

// freePublicIP returns the lowest pool address nobody holds. It only
// reads: the caller creates public-ips/<ip> in its transaction and, when
// that fails with ErrExists (someone took it meanwhile), asks again.
func (f *Fabric) freePublicIP(ctx context.Context) (string, error) {
	kvs, err := f.st.List(ctx, "public-ips/")
	if err != nil {
		return "", err
	}
	taken := map[string]bool{}
	for _, kv := range kvs {
		taken[kv.Key[strings.LastIndexByte(kv.Key, '/')+1:]] = true
	}
	for n := uint32(firstPublicHost); n < size(f.pub)-1; n++ {
		if a := addrN(f.pub, n).String(); !taken[a] {
			return a, nil
		}
	}
	return "", errdefs.LimitExceeded("AddressLimitExceeded", "The public address pool %s of this lab is exhausted; release Elastic IPs or stop instances with public IPs.", f.pub)
}

func eipNotFound(id string) error {
	return errdefs.NotFound("InvalidAllocationID.NotFound", "The allocation ID '%s' does not exist", id)
}

// AllocateAddress takes an Elastic IP from the pool (5 per account).
func (f *Fabric) AllocateAddress(ctx context.Context, acct string) (Address, error) {
	for try := 0; ; try++ {
		guard, err := f.quotaGuard(ctx, "eip", acct)
		if err != nil {
			return Address{}, err
		}
		all, err := f.ListAddresses(ctx, acct)
		if err != nil {
			return Address{}, err
		}
		if len(all) >= MaxElasticIPsPerAccount {
			return Address{}, errdefs.LimitExceeded("AddressLimitExceeded", "The maximum number of addresses has been reached.")
		}
		ip, err := f.freePublicIP(ctx)
		if err != nil {
			return Address{}, err
		}
		a := Address{AllocationID: newID("eipalloc"), AccountID: acct, PublicIP: ip}
		_, err = f.st.Txn(ctx, guard, store.OpCreate(publicIPKey(ip), publicIPIndex{AccountID: acct, AllocationID: a.AllocationID}),
			store.OpCreate(eipKey(acct, a.AllocationID), a))
		if (errors.Is(err, store.ErrExists) || errors.Is(err, store.ErrConflict)) && try < 32 {
			continue
		}
		if err != nil {
			return Address{}, fmt.Errorf("recording Elastic IP: %w", err)
		}
		return a, nil
	}
}

// ListAddresses returns the account's Elastic IPs, sorted by public IP.
func (f *Fabric) ListAddresses(ctx context.Context, acct string) ([]Address, error) {
	all, err := store.ListAs[Address](ctx, f.st, "eips/"+acct+"/")
	if err != nil {
		return nil, err
	}
	sort.Slice(all, func(i, j int) bool { return all[i].PublicIP < all[j].PublicIP })
	return all, nil
}

// findAddress finds an Elastic IP by allocation ID or public IP.
func (f *Fabric) findAddress(ctx context.Context, acct, allocID, publicIP string) (Address, int64, error) {
	if allocID != "" {
		a, rev, err := store.Load[Address](ctx, f.st, eipKey(acct, allocID))
		if errors.Is(err, store.ErrNotFound) {
			return Address{}, 0, eipNotFound(allocID)
		}
		return a, rev, err
	}
	if publicIP == "" {
		return Address{}, 0, errdefs.New(errdefs.ClassMissingParameter, "MissingParameter", "Either AllocationId or PublicIp must be given")
	}
	kvs, err := f.st.List(ctx, "eips/"+acct+"/")
	if err != nil {
		return Address{}, 0, err
	}
	for _, kv := range kvs {
		var a Address
		if err := kv.Decode(&a); err != nil {
			return Address{}, 0, err
		}
		if a.PublicIP == publicIP {
			return a, kv.ModRevision, nil
		}
	}
	return Address{}, 0, errdefs.NotFound("InvalidAddress.NotFound", "Address '%s' not found.", publicIP)
}

// AssociateAddressInput maps an Elastic IP to an interface.
type AssociateAddressInput struct {
	AccountID, AllocationID, PublicIP string
	// InstanceID (its primary interface) or NetworkInterfaceID.
	InstanceID, NetworkInterfaceID string
	// PrivateIP must be the interface's address when given.
	PrivateIP          string
	AllowReassociation bool
}

// AssociateAddress maps an Elastic IP to an interface whose VPC has an
// internet gateway attached. It replaces an auto-assigned public IP (back
// to the pool) and, with AllowReassociation, moves the address off its
// current interface; address, old and new interface change in one
// transaction. It returns the eipassoc- ID.
func (f *Fabric) AssociateAddress(ctx context.Context, in AssociateAddressInput) (string, error) {
	acct := in.AccountID
	for try := 0; ; try++ {
		a, arev, err := f.findAddress(ctx, acct, in.AllocationID, in.PublicIP)
		if err != nil {
			return "", err
		}
		eniID := in.NetworkInterfaceID
		switch {
		case in.InstanceID != "" && eniID != "":
			return "", errdefs.InvalidParameter("InvalidParameterCombination", "Give InstanceId or NetworkInterfaceId, not both.")
		case in.InstanceID != "":
			var idx instIndex
			if _, err := f.st.Get(ctx, instKey(acct, in.InstanceID), &idx); errors.Is(err, store.ErrNotFound) {
				return "", errdefs.NotFound("InvalidInstanceID.NotFound", "The instance ID '%s' does not exist", in.InstanceID)
			} else if err != nil {
				return "", err
			}
			eniID = idx.ENIID
		case eniID == "":
			return "", errdefs.New(errdefs.ClassMissingParameter, "MissingParameter", "Either InstanceId or NetworkInterfaceId must be given")
		}
		e, erev, err := store.Load[ENI](ctx, f.st, eniKey(acct, eniID))
		if errors.Is(err, store.ErrNotFound) {
			return "", errdefs.NotFound("InvalidNetworkInterfaceID.NotFound", "The networkInterface ID '%s' does not exist", eniID)
		} else if err != nil {
			return "", err
		}
		if e.InterfaceType == "nat_gateway" {
			return "", errdefs.InvalidParameter("InvalidParameterValue", "network interface %s belongs to a NAT gateway; its address is managed by the gateway", e.ID)
		}
		if in.PrivateIP != "" && in.PrivateIP != e.PrivateIP {
			return "", errdefs.InvalidParameter("InvalidParameterValue", "Value (%s) for parameter privateIpAddress is invalid: network interface %s has %s", in.PrivateIP, e.ID, e.PrivateIP)
		}
		if a.AssociationID != "" && a.NetworkInterfaceID == e.ID {
			return a.AssociationID, nil // already there, as AWS answers
		}
		if a.AssociationID != "" && !in.AllowReassociation {
			return "", errdefs.Conflict("Resource.AlreadyAssociated", "resource %s is already associated with associate-id %s; pass AllowReassociation to move it", a.AllocationID, a.AssociationID)
		}
		var igw igwVPCIndex
		if _, err := f.st.Get(ctx, igwVPCKey(e.VPCID), &igw); errors.Is(err, store.ErrNotFound) {
			return "", errdefs.InvalidParameter("Gateway.NotAttached", "Network %s is not attached to any internet gateway; attach one before associating an Elastic IP.", e.VPCID)
		} else if err != nil {
			return "", err
		}
		ops := []store.Op{}
		if a.NetworkInterfaceID != "" && a.AssociationID != "" {
			old, orev, err := store.Load[ENI](ctx, f.st, eniKey(acct, a.NetworkInterfaceID))
			if err == nil {
				if old.InterfaceType == "nat_gateway" {
					return "", errdefs.Conflict("Resource.AlreadyAssociated", "resource %s is in use by a NAT gateway", a.AllocationID)
				}
				old.EIPAllocationID = ""
				ops = append(ops, store.OpCompareAndSwap(eniKey(acct, old.ID), old, orev))
			} else if !errors.Is(err, store.ErrNotFound) {
				return "", err
			}
		}
		if e.EIPAllocationID != "" && e.EIPAllocationID != a.AllocationID {
			// The interface had another Elastic IP: AWS disassociates it.
			prev, prev2, err := store.Load[Address](ctx, f.st, eipKey(acct, e.EIPAllocationID))
			if err == nil {
				prev.AssociationID, prev.InstanceID, prev.NetworkInterfaceID, prev.PrivateIP = "", "", "", ""
				ops = append(ops, store.OpCompareAndSwap(eipKey(acct, prev.AllocationID), prev, prev2))
			} else if !errors.Is(err, store.ErrNotFound) {
				return "", err
			}
		}
		if e.PublicIP != "" {
			ops = append(ops, store.OpDelete(publicIPKey(e.PublicIP)))
			e.PublicIP = ""
		}
		e.EIPAllocationID = a.AllocationID
		a.AssociationID, a.InstanceID, a.NetworkInterfaceID, a.PrivateIP = newID("eipassoc"), e.InstanceID, e.ID, e.PrivateIP
		ops = append(ops, store.OpCompareAndSwap(eniKey(acct, e.ID), e, erev), store.OpCompareAndSwap(eipKey(acct, a.AllocationID), a, arev))
		_, err = f.st.Txn(ctx, ops...)
		if (errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound)) && try < 8 {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("associating %s: %w", a.AllocationID, err)
		}
		return a.AssociationID, f.changed(ctx, acct, e.VPCID)
	}
}

// DisassociateAddress unmaps an Elastic IP, named by association ID or
// public IP. The interface is left without a public IP.
func (f *Fabric) DisassociateAddress(ctx context.Context, acct, assocID, publicIP string) error {
	var a Address
	if assocID != "" {
		all, err := f.ListAddresses(ctx, acct)
		if err != nil {
			return err
		}
		found := false
		for _, x := range all {
			if x.AssociationID == assocID {
				a, found = x, true
			}
		}
		if !found {
			return errdefs.NotFound("InvalidAssociationID.NotFound", "The association ID '%s' does not exist", assocID)
		}
	} else {
		x, _, err := f.findAddress(ctx, acct, "", publicIP)
		if err != nil {
			return err
		}
		if x.AssociationID == "" {
			return nil
		}
		a = x
	}
	if a.NetworkInterfaceID != "" {
		if e, _, err := store.Load[ENI](ctx, f.st, eniKey(acct, a.NetworkInterfaceID)); err == nil && e.InterfaceType == "nat_gateway" {
			return errdefs.Conflict("InvalidIPAddress.InUse", "Elastic IP %s is in use by a NAT gateway; delete the gateway instead.", a.PublicIP)
		}
	}
	return f.disassociateEIP(ctx, acct, a.AllocationID)
}

// disassociateEIP clears an Elastic IP's association and its interface's
// reference in one transaction.
func (f *Fabric) disassociateEIP(ctx context.Context, acct, allocID string) error {
	for try := 0; ; try++ {
		a, arev, err := store.Load[Address](ctx, f.st, eipKey(acct, allocID))
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if a.AssociationID == "" {
			return nil
		}
		ops := []store.Op{}
		vpc := ""
		if e, erev, err := store.Load[ENI](ctx, f.st, eniKey(acct, a.NetworkInterfaceID)); err == nil {
			vpc = e.VPCID
			if e.EIPAllocationID == a.AllocationID {
				e.EIPAllocationID = ""
				ops = append(ops, store.OpCompareAndSwap(eniKey(acct, e.ID), e, erev))
			}
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		a.AssociationID, a.InstanceID, a.NetworkInterfaceID, a.PrivateIP = "", "", "", ""
		ops = append(ops, store.OpCompareAndSwap(eipKey(acct, a.AllocationID), a, arev))
		_, err = f.st.Txn(ctx, ops...)
		if (errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound)) && try < 8 {
			continue
		}
		if err != nil {
			return err
		}
		if vpc != "" {
			return f.changed(ctx, acct, vpc)
		}
		return nil
	}
}

// ReleaseAddress gives an unassociated Elastic IP back to the pool.
func (f *Fabric) ReleaseAddress(ctx context.Context, acct, allocID, publicIP string) error {
	a, rev, err := f.findAddress(ctx, acct, allocID, publicIP)
	if err != nil {
		return err
	}
	if a.AssociationID != "" {
		return errdefs.Conflict("InvalidIPAddress.InUse", "Address %s is in use (association %s); disassociate it first.", a.PublicIP, a.AssociationID)
	}
	_, err = f.st.Txn(ctx, store.OpDeleteIf(eipKey(acct, a.AllocationID), rev), store.OpDelete(publicIPKey(a.PublicIP)))
	if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
		return errdefs.Conflict("IncorrectState", "Elastic IP %s changed meanwhile; try again", a.PublicIP)
	}
	return err
}

// ReleasePublicIP returns an interface's auto-assigned public IP to the
// pool (an instance stops: AWS gives it a new one at the next start). An
// Elastic IP stays associated.
func (f *Fabric) ReleasePublicIP(ctx context.Context, acct, eniID string) error {
	for try := 0; ; try++ {
		e, rev, err := store.Load[ENI](ctx, f.st, eniKey(acct, eniID))
		if errors.Is(err, store.ErrNotFound) {
			return errdefs.NotFound("InvalidNetworkInterfaceID.NotFound", "The networkInterface ID '%s' does not exist", eniID)
		}
		if err != nil {
			return err
		}
		if e.PublicIP == "" {
			return nil
		}
		ip := e.PublicIP
		e.PublicIP = ""
		_, err = f.st.Txn(ctx, store.OpCompareAndSwap(eniKey(acct, e.ID), e, rev), store.OpDelete(publicIPKey(ip)))
		if (errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound)) && try < 8 {
			continue
		}
		if err != nil {
			return err
		}
		return f.changed(ctx, acct, e.VPCID)
	}
}

// AssignPublicIP gives an interface a fresh public IP from the pool (an
// instance starts) unless it has one or an Elastic IP; it returns the
// interface's public address (which may be the Elastic IP's).
func (f *Fabric) AssignPublicIP(ctx context.Context, acct, eniID string) (string, error) {
	for try := 0; ; try++ {
		e, rev, err := store.Load[ENI](ctx, f.st, eniKey(acct, eniID))
		if errors.Is(err, store.ErrNotFound) {
			return "", errdefs.NotFound("InvalidNetworkInterfaceID.NotFound", "The networkInterface ID '%s' does not exist", eniID)
		}
		if err != nil {
			return "", err
		}
		if e.PublicIP != "" {
			return e.PublicIP, nil
		}
		if e.EIPAllocationID != "" {
			a, _, err := store.Load[Address](ctx, f.st, eipKey(acct, e.EIPAllocationID))
			if err != nil {
				return "", err
			}
			return a.PublicIP, nil
		}
		ip, err := f.freePublicIP(ctx)
		if err != nil {
			return "", err
		}
		e.PublicIP = ip
		_, err = f.st.Txn(ctx, store.OpCompareAndSwap(eniKey(acct, e.ID), e, rev),
			store.OpCreate(publicIPKey(ip), publicIPIndex{AccountID: acct, ENIID: e.ID}))
		if (errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrExists)) && try < 16 {
			continue
		}
		if err != nil {
			return "", err
		}
		return ip, f.changed(ctx, acct, e.VPCID)
	}
}

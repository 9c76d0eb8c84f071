package instances

import (
	"context"
	"errors"
	"regexp"
	"time"

	"github.com/labcloud/labcloud/internal/errdefs"
	"github.com/labcloud/labcloud/internal/store"
)

// Instance profile association states, as EC2 reports them.
const (
	AssociationAssociated     = "associated"
	AssociationDisassociating = "disassociating"
)

// IAMProfile names an IAM instance profile (resolved by the caller, who
// has also checked that the caller may pass its role).
type IAMProfile struct {
	ARN string `json:"arn"`
	ID  string `json:"id"`
}

// IAMProfileAssociation ties an instance profile to an instance. The
// metadata service serves the profile role's credentials while it exists;
// a replaced association gets a new id (and new credentials), as on EC2.
type IAMProfileAssociation struct {
	AssociationID string     `json:"associationId"`
	Profile       IAMProfile `json:"profile"`
	State         string     `json:"state"`
	Since         time.Time  `json:"since"`
}

// AssociationInfo is an association with the instance it belongs to.
type AssociationInfo struct {
	InstanceID string
	IAMProfileAssociation
}

var associationIDRe = regexp.MustCompile(`^iip-assoc-[0-9a-f]{8,17}$`)

func newAssociation(p *IAMProfile, now time.Time) *IAMProfileAssociation {
	if p == nil {
		return nil
	}
	return &IAMProfileAssociation{AssociationID: newID("iip-assoc-"), Profile: *p, State: AssociationAssociated, Since: now.UTC()}
}

func profileARN(i Instance) string {
	if i.IAMProfile == nil {
		return ""
	}
	return i.IAMProfile.Profile.ARN
}

func profileID(i Instance) string {
	if i.IAMProfile == nil {
		return ""
	}
	return i.IAMProfile.Profile.ID
}

func associationID(i Instance) string {
	if i.IAMProfile == nil {
		return ""
	}
	return i.IAMProfile.AssociationID
}

// associable reports whether an instance may get a profile: EC2 takes
// running and stopped instances (and those on their way).
func associable(i Instance) error {
	switch i.Status.State {
	case StateTerminated, StateShuttingDown:
		return errdefs.Conflict("IncorrectInstanceState", "The instance '%s' is %s; instance profiles can be associated with pending, running, stopping or stopped instances only", i.ID, i.Status.State)
	}
	return nil
}

// AssociateIAMProfile associates an instance profile with an instance
// that has none (IncorrectState otherwise, as EC2 says).
func (s *Service) AssociateIAMProfile(ctx context.Context, account, instanceID string, p IAMProfile) (AssociationInfo, error) {
	if _, err := s.Get(ctx, account, instanceID); err != nil {
		return AssociationInfo{}, err
	}
	var out AssociationInfo
	_, err := store.Update(ctx, s.opts.Store, instanceKey(account, instanceID), func(i *Instance) error {
		if err := associable(*i); err != nil {
			return err
		}
		if i.IAMProfile != nil {
			return errdefs.Conflict("IncorrectState", "There is an existing association for instance %s (%s); replace it with ReplaceIamInstanceProfileAssociation or disassociate it first", i.ID, i.IAMProfile.AssociationID)
		}
		i.IAMProfile = newAssociation(&p, s.opts.Now())
		out = AssociationInfo{InstanceID: i.ID, IAMProfileAssociation: *i.IAMProfile}
		return nil
	})
	return out, err
}

// findAssociation returns the instance holding an association.
func (s *Service) findAssociation(ctx context.Context, account, associationID string) (Instance, error) {
	if !associationIDRe.MatchString(associationID) {
		return Instance{}, errdefs.InvalidParameter("InvalidAssociationID.Malformed", "Invalid association id: '%s' (instance profile association ids look like iip-assoc-0123456789abcdef0)", associationID)
	}
	all, err := store.ListAs[Instance](ctx, s.opts.Store, instancesPrefix+account+"/")
	if err != nil {
		return Instance{}, err
	}
	for _, i := range all {
		if i.IAMProfile != nil && i.IAMProfile.AssociationID == associationID && i.Status.State != StateTerminated {
			return i, nil
		}
	}
	return Instance{}, errdefs.NotFound("InvalidAssociationID.NotFound", "An association with ID %s does not exist; list them with DescribeIamInstanceProfileAssociations", associationID)
}

// errAssociationGone makes store.Update give up when the association
// changed between finding it and updating the instance.
var errAssociationGone = errors.New("association changed")

// updateAssociation applies fn to the instance holding associationID.
func (s *Service) updateAssociation(ctx context.Context, account, associationID string, fn func(*Instance) error) (Instance, error) {
	for tries := 0; ; tries++ {
		inst, err := s.findAssociation(ctx, account, associationID)
		if err != nil {
			return Instance{}, err
		}
		out, err := store.Update(ctx, s.opts.Store, instanceKey(account, inst.ID), func(i *Instance) error {
			if i.IAMProfile == nil || i.IAMProfile.AssociationID != associationID {
				return errAssociationGone
			}
			return fn(i)
		})
		if errors.Is(err, errAssociationGone) && tries < 3 {
			continue
		}
		return out, err
	}
}

// ReplaceIAMProfile swaps the profile of an association for another; the
// association gets a new id.
func (s *Service) ReplaceIAMProfile(ctx context.Context, account, associationID string, p IAMProfile) (AssociationInfo, error) {
	var out AssociationInfo
	_, err := s.updateAssociation(ctx, account, associationID, func(i *Instance) error {
		if err := associable(*i); err != nil {
			return err
		}
		i.IAMProfile = newAssociation(&p, s.opts.Now())
		out = AssociationInfo{InstanceID: i.ID, IAMProfileAssociation: *i.IAMProfile}
		return nil
	})
	return out, err
}

// DisassociateIAMProfile removes an association: the metadata service
// stops serving credentials at once. It returns the association in state
// disassociating, as EC2 does.
func (s *Service) DisassociateIAMProfile(ctx context.Context, account, associationID string) (AssociationInfo, error) {
	var out AssociationInfo
	_, err := s.updateAssociation(ctx, account, associationID, func(i *Instance) error {
		out = AssociationInfo{InstanceID: i.ID, IAMProfileAssociation: *i.IAMProfile}
		out.State = AssociationDisassociating
		i.IAMProfile = nil
		return nil
	})
	return out, err
}

// IAMProfileAssociations lists the account's associations (of instances
// not terminated), by instance launch order.
func (s *Service) IAMProfileAssociations(ctx context.Context, account string) ([]AssociationInfo, error) {
	list, err := s.DescribeInstances(ctx, account, nil)
	if err != nil {
		return nil, err
	}
	out := []AssociationInfo{}
	for _, i := range list {
		if i.IAMProfile != nil && i.Status.State != StateTerminated {
			out = append(out, AssociationInfo{InstanceID: i.ID, IAMProfileAssociation: *i.IAMProfile})
		}
	}
	return out, nil
}

// ModifyMetadataOptions changes an instance's metadata service settings;
// empty fields (and HopLimit 0) keep their value. The metadata service
// reads them from the record at every request, so they apply at once.
func (s *Service) ModifyMetadataOptions(ctx context.Context, account, instanceID string, m MetadataOptions) (MetadataOptions, error) {
	if _, err := s.Get(ctx, account, instanceID); err != nil {
		return MetadataOptions{}, err
	}
	out, err := store.Update(ctx, s.opts.Store, instanceKey(account, instanceID), func(i *Instance) error {
		if i.Status.State == StateTerminated || i.Status.State == StateShuttingDown {
			return errdefs.Conflict("IncorrectInstanceState", "The instance '%s' is %s; its metadata options can no longer change", i.ID, i.Status.State)
		}
		next := i.Metadata
		if m.HTTPTokens != "" {
			next.HTTPTokens = m.HTTPTokens
		}
		if m.HTTPEndpoint != "" {
			next.HTTPEndpoint = m.HTTPEndpoint
		}
		if m.HopLimit != 0 {
			next.HopLimit = m.HopLimit
		}
		if err := validateMetadata(next); err != nil {
			return err
		}
		i.Metadata = next
		return nil
	})
	return out.Metadata, err
}

// Package cloud holds the shape of this labcloud install as EC2 reports it:
// its region, the region's availability zones, and each account's EC2
// quotas. The data lives in etcd (seeded from the configuration at start),
// so handlers read state rather than constants and a multi-node install
// sees one truth.
//
// Store layout (relative to the etcd prefix):
//
//	regions/<name>                 Region
//	zones/<name>                   Zone
//	accountattributes/<account>    AccountAttributes
package cloud

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/labcloud/labcloud/internal/store"
)

// Region is an AWS region.
type Region struct {
	Name        string `json:"name"`
	Endpoint    string `json:"endpoint"`
	OptInStatus string `json:"optInStatus"`
}

// Zone is an availability zone of a region.
type Zone struct {
	Name        string `json:"name"`
	ID          string `json:"id"`
	Region      string `json:"region"`
	State       string `json:"state"`
	Type        string `json:"type"`
	OptInStatus string `json:"optInStatus"`
}

// AccountAttributes are an account's EC2 quotas and defaults.
type AccountAttributes struct {
	AccountID                     string `json:"accountId"`
	MaxInstances                  int    `json:"maxInstances"`
	MaxElasticIPs                 int    `json:"maxElasticIPs"`
	VPCMaxElasticIPs              int    `json:"vpcMaxElasticIPs"`
	MaxSecurityGroupsPerInterface int    `json:"maxSecurityGroupsPerInterface"`
	// DefaultVPC is the id of the account's default VPC, "none" until the
	// VPC layer creates one.
	DefaultVPC string `json:"defaultVpc"`
}

// Limits are the quotas written for each new account.
type Limits struct {
	MaxInstances, MaxElasticIPs, MaxSecurityGroupsPerInterface int
}

// Cloud reads and seeds the install's shape.
type Cloud struct {
	st *store.Store
}

// New returns a Cloud over st.
func New(st *store.Store) *Cloud { return &Cloud{st: st} }

// Seed writes the configured region and zones into state. Zones of the
// region that are no longer configured are removed, so the config file
// stays the source of truth across restarts.
func (c *Cloud) Seed(ctx context.Context, region, endpoint string, zones []string) error {
	if _, err := c.st.Put(ctx, "regions/"+region, Region{Name: region, Endpoint: endpoint, OptInStatus: "opt-in-not-required"}); err != nil {
		return fmt.Errorf("seeding region %s: %w", region, err)
	}
	want := map[string]bool{}
	for i, z := range zones {
		want[z] = true
		zone := Zone{
			Name: z, Region: region, State: "available", Type: "availability-zone",
			OptInStatus: "opt-in-not-required",
			// AWS zone ids are stable per account mapping ("use1-az1");
			// ours are stable per install.
			ID: fmt.Sprintf("%s-az%d", strings.ReplaceAll(region, "-", ""), i+1),
		}
		if _, err := c.st.Put(ctx, "zones/"+z, zone); err != nil {
			return fmt.Errorf("seeding zone %s: %w", z, err)
		}
	}
	existing, err := c.Zones(ctx)
	if err != nil {
		return err
	}
	for _, z := range existing {
		if z.Region == region && !want[z.Name] {
			if err := c.st.Delete(ctx, "zones/"+z.Name); err != nil && !errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("removing zone %s: %w", z.Name, err)
			}
		}
	}
	return nil
}

// Regions lists the regions, sorted by name.
func (c *Cloud) Regions(ctx context.Context) ([]Region, error) {
	rs, err := store.ListAs[Region](ctx, c.st, "regions/")
	sort.Slice(rs, func(i, j int) bool { return rs[i].Name < rs[j].Name })
	return rs, err
}

// Zones lists the availability zones, sorted by name.
func (c *Cloud) Zones(ctx context.Context) ([]Zone, error) {
	zs, err := store.ListAs[Zone](ctx, c.st, "zones/")
	sort.Slice(zs, func(i, j int) bool { return zs[i].Name < zs[j].Name })
	return zs, err
}

// SeedAccount writes the EC2 attributes of a new account, unless they
// exist already (a restart must not reset an account's quotas).
func (c *Cloud) SeedAccount(ctx context.Context, accountID string, l Limits) error {
	a := AccountAttributes{
		AccountID:                     accountID,
		MaxInstances:                  l.MaxInstances,
		MaxElasticIPs:                 l.MaxElasticIPs,
		VPCMaxElasticIPs:              l.MaxElasticIPs,
		MaxSecurityGroupsPerInterface: l.MaxSecurityGroupsPerInterface,
		DefaultVPC:                    "none",
	}
	if _, err := c.st.Create(ctx, "accountattributes/"+accountID, a); err != nil && !errors.Is(err, store.ErrExists) {
		return fmt.Errorf("seeding attributes of account %s: %w", accountID, err)
	}
	return nil
}

// AccountAttributes returns an account's EC2 attributes.
func (c *Cloud) AccountAttributes(ctx context.Context, accountID string) (AccountAttributes, error) {
	var a AccountAttributes
	_, err := c.st.Get(ctx, "accountattributes/"+accountID, &a)
	return a, err
}

package api

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/labcloud/labcloud/internal/cloud"
	"github.com/labcloud/labcloud/internal/errdefs"
)

func (s *Server) registerEC2() {
	s.handle(ServiceEC2, "DescribeRegions", ec2Op(s.describeRegions))
	s.handle(ServiceEC2, "DescribeAvailabilityZones", ec2Op(s.describeAvailabilityZones))
	s.handle(ServiceEC2, "DescribeAccountAttributes", ec2Op(s.describeAccountAttributes))
}

// DescribeRegionsInput is the EC2 DescribeRegions request.
type DescribeRegionsInput struct {
	Filters     []Filter `locationName:"Filter"`
	RegionNames []string `locationName:"RegionName" locationNameList:"RegionName"`
	AllRegions  *bool
}

// DescribeRegionsOutput is the EC2 DescribeRegions response.
type DescribeRegionsOutput struct {
	Regions []RegionItem `locationName:"regionInfo" locationNameList:"item"`
}

// RegionItem is one region in DescribeRegions.
type RegionItem struct {
	RegionName  string `locationName:"regionName"`
	Endpoint    string `locationName:"regionEndpoint"`
	OptInStatus string `locationName:"optInStatus"`
}

var regionFilters = filterFields[cloud.Region]{
	"region-name":   func(r cloud.Region) []string { return []string{r.Name} },
	"endpoint":      func(r cloud.Region) []string { return []string{r.Endpoint} },
	"opt-in-status": func(r cloud.Region) []string { return []string{r.OptInStatus} },
}

func (s *Server) describeRegions(ctx context.Context, c *Call, in *DescribeRegionsInput) (*DescribeRegionsOutput, error) {
	regions, err := s.opts.Cloud.Regions(ctx)
	if err != nil {
		return nil, err
	}
	regions, err = selectByName(regions, in.RegionNames, func(r cloud.Region) string { return r.Name },
		func(n string) error {
			return errdefs.InvalidParameter("InvalidParameterValue", "Invalid region: %s (this install serves %s)", n, s.opts.Region)
		})
	if err != nil {
		return nil, err
	}
	regions, err = applyFilters(regions, in.Filters, regionFilters)
	if err != nil {
		return nil, err
	}
	out := &DescribeRegionsOutput{Regions: []RegionItem{}}
	for _, r := range regions {
		out.Regions = append(out.Regions, RegionItem{RegionName: r.Name, Endpoint: r.Endpoint, OptInStatus: r.OptInStatus})
	}
	return out, nil
}

// DescribeAvailabilityZonesInput is the EC2 DescribeAvailabilityZones request.
type DescribeAvailabilityZonesInput struct {
	Filters              []Filter `locationName:"Filter"`
	ZoneNames            []string `locationName:"ZoneName" locationNameList:"ZoneName"`
	ZoneIDs              []string `locationName:"ZoneId" locationNameList:"ZoneId"`
	AllAvailabilityZones *bool
}

// DescribeAvailabilityZonesOutput is the EC2 DescribeAvailabilityZones response.
type DescribeAvailabilityZonesOutput struct {
	AvailabilityZones []ZoneItem `locationName:"availabilityZoneInfo" locationNameList:"item"`
}

// ZoneItem is one availability zone.
type ZoneItem struct {
	ZoneName           string        `locationName:"zoneName"`
	ZoneID             string        `locationName:"zoneId"`
	State              string        `locationName:"zoneState"`
	RegionName         string        `locationName:"regionName"`
	ZoneType           string        `locationName:"zoneType"`
	OptInStatus        string        `locationName:"optInStatus"`
	GroupName          string        `locationName:"groupName"`
	NetworkBorderGroup string        `locationName:"networkBorderGroup"`
	Messages           []ZoneMessage `locationName:"messageSet" locationNameList:"item"`
}

// ZoneMessage is a message about a zone (AWS uses them for outages).
type ZoneMessage struct {
	Message string `locationName:"message"`
}

var zoneFilters = filterFields[cloud.Zone]{
	"zone-name":            func(z cloud.Zone) []string { return []string{z.Name} },
	"zone-id":              func(z cloud.Zone) []string { return []string{z.ID} },
	"region-name":          func(z cloud.Zone) []string { return []string{z.Region} },
	"state":                func(z cloud.Zone) []string { return []string{z.State} },
	"zone-type":            func(z cloud.Zone) []string { return []string{z.Type} },
	"opt-in-status":        func(z cloud.Zone) []string { return []string{z.OptInStatus} },
	"group-name":           func(z cloud.Zone) []string { return []string{z.Region} },
	"network-border-group": func(z cloud.Zone) []string { return []string{z.Region} },
	"message":              func(z cloud.Zone) []string { return nil },
}

func (s *Server) describeAvailabilityZones(ctx context.Context, c *Call, in *DescribeAvailabilityZonesInput) (*DescribeAvailabilityZonesOutput, error) {
	zones, err := s.opts.Cloud.Zones(ctx)
	if err != nil {
		return nil, err
	}
	zones, err = selectByName(zones, in.ZoneNames, func(z cloud.Zone) string { return z.Name },
		func(n string) error {
			return errdefs.InvalidParameter("InvalidParameterValue", "The zone '%s' does not exist in region %s; list them with DescribeAvailabilityZones", n, s.opts.Region)
		})
	if err != nil {
		return nil, err
	}
	zones, err = selectByName(zones, in.ZoneIDs, func(z cloud.Zone) string { return z.ID },
		func(n string) error {
			return errdefs.InvalidParameter("InvalidParameterValue", "The zone ID '%s' does not exist in region %s; list them with DescribeAvailabilityZones", n, s.opts.Region)
		})
	if err != nil {
		return nil, err
	}
	zones, err = applyFilters(zones, in.Filters, zoneFilters)
	if err != nil {
		return nil, err
	}
	out := &DescribeAvailabilityZonesOutput{AvailabilityZones: []ZoneItem{}}
	for _, z := range zones {
		out.AvailabilityZones = append(out.AvailabilityZones, ZoneItem{
			ZoneName: z.Name, ZoneID: z.ID, State: z.State, RegionName: z.Region, ZoneType: z.Type,
			OptInStatus: z.OptInStatus, GroupName: z.Region, NetworkBorderGroup: z.Region, Messages: []ZoneMessage{},
		})
	}
	return out, nil
}

// selectByName keeps the items named in names (all when names is empty);
// a name with no item is an error, as AWS refuses unknown names.
func selectByName[T any](items []T, names []string, name func(T) string, missing func(string) error) ([]T, error) {
	if len(names) == 0 {
		return items, nil
	}
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	var out []T
	for _, it := range items {
		if want[name(it)] {
			out = append(out, it)
			delete(want, name(it))
		}
	}
	if len(want) > 0 {
		left := make([]string, 0, len(want))
		for n := range want {
			left = append(left, n)
		}
		sort.Strings(left)
		return nil, missing(strings.Join(left, ", "))
	}
	return out, nil
}

// DescribeAccountAttributesInput is the EC2 DescribeAccountAttributes request.
type DescribeAccountAttributesInput struct {
	AttributeNames []string `locationName:"attributeName" locationNameList:"attributeName"`
}

// DescribeAccountAttributesOutput is the EC2 DescribeAccountAttributes response.
type DescribeAccountAttributesOutput struct {
	AccountAttributes []AccountAttributeItem `locationName:"accountAttributeSet" locationNameList:"item"`
}

// AccountAttributeItem is one attribute with its values.
type AccountAttributeItem struct {
	AttributeName   string               `locationName:"attributeName"`
	AttributeValues []AttributeValueItem `locationName:"attributeValueSet" locationNameList:"item"`
}

// AttributeValueItem is one value of an account attribute.
type AttributeValueItem struct {
	AttributeValue string `locationName:"attributeValue"`
}

// accountAttributeNames is the order AWS lists the attributes in.
var accountAttributeNames = []string{
	"supported-platforms", "vpc-max-security-groups-per-interface", "max-elastic-ips",
	"max-instances", "vpc-max-elastic-ips", "default-vpc",
}

func (s *Server) describeAccountAttributes(ctx context.Context, c *Call, in *DescribeAccountAttributesInput) (*DescribeAccountAttributesOutput, error) {
	a, err := s.opts.Cloud.AccountAttributes(ctx, c.Principal.AccountID)
	if err != nil {
		return nil, fmt.Errorf("reading attributes of account %s: %w", c.Principal.AccountID, err)
	}
	values := map[string][]string{
		"supported-platforms":                   {"VPC"},
		"vpc-max-security-groups-per-interface": {strconv.Itoa(a.MaxSecurityGroupsPerInterface)},
		"max-elastic-ips":                       {strconv.Itoa(a.MaxElasticIPs)},
		"max-instances":                         {strconv.Itoa(a.MaxInstances)},
		"vpc-max-elastic-ips":                   {strconv.Itoa(a.VPCMaxElasticIPs)},
		"default-vpc":                           {a.DefaultVPC},
	}
	names := in.AttributeNames
	if len(names) == 0 {
		names = accountAttributeNames
	}
	out := &DescribeAccountAttributesOutput{AccountAttributes: []AccountAttributeItem{}}
	for _, n := range names {
		vs, ok := values[n]
		if !ok {
			return nil, errdefs.InvalidParameter("InvalidParameterValue",
				"Value (%s) for parameter attributeName is invalid; valid names are: %s", n, strings.Join(accountAttributeNames, ", "))
		}
		item := AccountAttributeItem{AttributeName: n, AttributeValues: []AttributeValueItem{}}
		for _, v := range vs {
			item.AttributeValues = append(item.AttributeValues, AttributeValueItem{AttributeValue: v})
		}
		out.AccountAttributes = append(out.AccountAttributes, item)
	}
	return out, nil
}

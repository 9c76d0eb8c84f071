// Package config loads labcloud.yaml. Every key has a default, so labcloudd
// runs with no file at all; configs/labcloud.yaml documents each key and a
// test keeps that file and these defaults in step.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// Config is the daemon's configuration.
type Config struct {
	// StateDir holds etcd's data (embedded mode), admin-credentials and
	// endpoint files.
	StateDir string `yaml:"stateDir"`
	// Listen is the API's address. Loopback by default: a lab API must not
	// be reachable from the network unless the operator says so.
	Listen string `yaml:"listen"`
	// Region is the single region this install serves.
	Region string `yaml:"region"`
	// Zones are the region's availability zones.
	Zones []string `yaml:"zones"`
	// Etcd selects the state store.
	Etcd EtcdConfig `yaml:"etcd"`
	// Limits are the per-account EC2 quotas written into state for each new
	// account (DescribeAccountAttributes reports them).
	Limits Limits `yaml:"limits"`
	// Network configures the VPC fabric.
	Network NetworkConfig `yaml:"network"`
	// Instances sizes what this node offers to VMs.
	Instances InstancesConfig `yaml:"instances"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `yaml:"logLevel"`
	// TestClock enables POST /_labcloud/test/clock?advance=DURATION, which
	// moves the clock that credential expirations use. Flag only
	// (--test-clock): tests use it, a lab never should.
	TestClock bool `yaml:"-"`
}

// EtcdConfig selects embedded or external etcd.
type EtcdConfig struct {
	// Endpoints of an external etcd cluster; empty runs an embedded
	// single-member etcd under StateDir.
	Endpoints []string `yaml:"endpoints"`
	// Prefix is the key prefix for all labcloud objects, so several installs
	// can share one external cluster.
	Prefix string `yaml:"prefix"`
}

// NetworkConfig configures the VPC fabric.
type NetworkConfig struct {
	// NamePrefix starts the names of every network namespace, bridge and
	// tap labcloudd creates (1-6 lowercase letters or digits); objects with
	// the prefix that no record owns are removed at start, so two installs
	// on one host need different prefixes.
	NamePrefix string `yaml:"namePrefix"`
	// PublicCIDR is the pool of public and Elastic IPs. labcloudd puts its
	// first address on a host bridge (<namePrefix>pub) that the VPCs'
	// internet gateways plug into, so the lab server reaches public IPs
	// directly. A documentation range by default: nothing routes it
	// anywhere else.
	PublicCIDR string `yaml:"publicCidr"`
	// PublicGateway is the "internet" next hop of the internet gateways:
	// an address on the public bridge's subnet (e.g. a namespace of a
	// test or a lab playing the internet). Empty: there is no internet;
	// instances reach only the lab server and other public IPs.
	PublicGateway string `yaml:"publicGateway"`
	// Uplink names a real interface of the lab server (e.g. eno1) that
	// instances with public IPs reach the real network through: the host
	// masquerades the public pool out of it (in labcloud's own nftables
	// table, labcloud_<namePrefix>_uplink) and turns on IPv4 forwarding.
	// Inbound connections to public IPs need the network to route the
	// pool to this host. Empty (the default): nothing leaves the host.
	// Exclusive with publicGateway. Flag: --uplink.
	Uplink string `yaml:"uplink"`
}

// InstancesConfig sizes the node's capacity for VMs.
type InstancesConfig struct {
	// VCPUOvercommit multiplies the host's CPUs into the vCPUs instances
	// may be given in total (InsufficientInstanceCapacity beyond).
	VCPUOvercommit float64 `yaml:"vcpuOvercommit"`
	// MemoryOvercommit does the same for memory.
	MemoryOvercommit float64 `yaml:"memoryOvercommit"`
	// AccountVCPULimit bounds one account's running vCPUs (VcpuLimitExceeded).
	AccountVCPULimit int `yaml:"accountVcpuLimit"`
	// MaxGuestMemoryMiB caps each VM's real RAM; the API still reports the
	// type's memory.
	MaxGuestMemoryMiB int `yaml:"maxGuestMemoryMiB"`
}

// Limits are the EC2 account quotas.
type Limits struct {
	MaxInstances                  int `yaml:"maxInstances"`
	MaxElasticIPs                 int `yaml:"maxElasticIPs"`
	MaxSecurityGroupsPerInterface int `yaml:"maxSecurityGroupsPerInterface"`
}

// Default returns the configuration used when no file is given.
func Default() Config {
	return Config{
		StateDir: "/var/lib/labcloud",
		Listen:   "127.0.0.1:7420",
		Region:   "lab-1",
		Zones:    []string{"lab-1a", "lab-1b", "lab-1c"},
		Etcd:     EtcdConfig{Prefix: "/labcloud/"},
		Limits: Limits{
			MaxInstances:                  20,
			MaxElasticIPs:                 5,
			MaxSecurityGroupsPerInterface: 5,
		},
		Network:   NetworkConfig{NamePrefix: "lc", PublicCIDR: "203.0.113.0/24"},
		Instances: InstancesConfig{VCPUOvercommit: 4, MemoryOvercommit: 1.0, AccountVCPULimit: 32, MaxGuestMemoryMiB: 2048},
		LogLevel:  "info",
	}
}

// Load reads path (if non-empty) over the defaults and validates the result.
// Unknown keys are an error: a typo must not silently fall back to a default.
func Load(path string) (Config, error) {
	c := Default()
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return c, fmt.Errorf("reading config: %w", err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		// An empty file decodes to io.EOF: it means "all defaults".
		if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
			return c, fmt.Errorf("parsing config %s: %w", path, err)
		}
	}
	if len(c.Etcd.Endpoints) == 0 {
		c.Etcd.Endpoints = nil // "endpoints: []" and no key mean the same
	}
	return c, c.Validate()
}

var (
	regionRe = regexp.MustCompile(`^[a-z]+(-[a-z]+)*-[0-9]+$`)
	prefixRe = regexp.MustCompile(`^[a-z0-9]{1,6}$`)
	logLevel = map[string]bool{"debug": true, "info": true, "warn": true, "error": true}
)

// Validate checks every key and says what to fix.
func (c Config) Validate() error {
	var errs []string
	if c.StateDir == "" {
		errs = append(errs, "stateDir must not be empty")
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		errs = append(errs, fmt.Sprintf("listen %q must be host:port (e.g. 127.0.0.1:7420)", c.Listen))
	}
	if !regionRe.MatchString(c.Region) {
		errs = append(errs, fmt.Sprintf("region %q must look like lab-1 (lowercase words and a number, dash-separated)", c.Region))
	}
	if len(c.Zones) == 0 {
		errs = append(errs, "zones must list at least one availability zone")
	}
	seen := map[string]bool{}
	for _, z := range c.Zones {
		if !strings.HasPrefix(z, c.Region) || len(z) != len(c.Region)+1 || z[len(z)-1] < 'a' || z[len(z)-1] > 'z' {
			errs = append(errs, fmt.Sprintf("zone %q must be the region name plus one letter (e.g. %sa)", z, c.Region))
		}
		if seen[z] {
			errs = append(errs, fmt.Sprintf("zone %q is listed twice", z))
		}
		seen[z] = true
	}
	if !strings.HasPrefix(c.Etcd.Prefix, "/") || !strings.HasSuffix(c.Etcd.Prefix, "/") {
		errs = append(errs, fmt.Sprintf("etcd.prefix %q must start and end with /", c.Etcd.Prefix))
	}
	if c.Limits.MaxInstances < 0 || c.Limits.MaxElasticIPs < 0 || c.Limits.MaxSecurityGroupsPerInterface < 1 || c.Limits.MaxSecurityGroupsPerInterface > 16 {
		errs = append(errs, "limits must be non-negative and maxSecurityGroupsPerInterface between 1 and 16")
	}
	if i := c.Instances; i.VCPUOvercommit <= 0 || i.MemoryOvercommit <= 0 || i.AccountVCPULimit < 1 || i.MaxGuestMemoryMiB < 128 {
		errs = append(errs, "instances: overcommits must be positive, accountVcpuLimit at least 1 and maxGuestMemoryMiB at least 128")
	}
	if !prefixRe.MatchString(c.Network.NamePrefix) {
		errs = append(errs, fmt.Sprintf("network.namePrefix %q must be 1-6 lowercase letters or digits", c.Network.NamePrefix))
	}
	if p, err := netip.ParsePrefix(c.Network.PublicCIDR); err != nil || !p.Addr().Is4() || p.Bits() > 28 || p.Bits() < 8 || p.Masked() != p {
		errs = append(errs, fmt.Sprintf("network.publicCidr %q must be an IPv4 network of /8 to /28, e.g. 203.0.113.0/24", c.Network.PublicCIDR))
	} else if c.Network.PublicGateway != "" {
		if g, err := netip.ParseAddr(c.Network.PublicGateway); err != nil || !p.Contains(g) {
			errs = append(errs, fmt.Sprintf("network.publicGateway %q must be an address inside network.publicCidr %s (or empty for no internet)", c.Network.PublicGateway, p))
		}
	}
	if u := c.Network.Uplink; u != "" {
		switch {
		case len(u) > 15 || strings.ContainsAny(u, "/ \t\"\x00"):
			errs = append(errs, fmt.Sprintf("network.uplink %q must be a network interface name of this host (1-15 characters, e.g. eno1)", u))
		case c.Network.PublicGateway != "":
			errs = append(errs, fmt.Sprintf("network.uplink %q and network.publicGateway %q are two ways to the internet: set one", u, c.Network.PublicGateway))
		case strings.HasPrefix(u, c.Network.NamePrefix):
			errs = append(errs, fmt.Sprintf("network.uplink %q starts with network.namePrefix %q: name a real interface, not one of labcloud's", u, c.Network.NamePrefix))
		}
	}
	if !logLevel[c.LogLevel] {
		errs = append(errs, fmt.Sprintf("logLevel %q must be debug, info, warn or error", c.LogLevel))
	}
	if len(errs) > 0 {
		return fmt.Errorf("invalid configuration: %s", strings.Join(errs, "; "))
	}
	return nil
}

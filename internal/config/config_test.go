package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// The documented example must say exactly what the defaults are.
func TestExampleFileMatchesDefaults(t *testing.T) {
	got, err := Load(filepath.Join("..", "..", "configs", "labcloud.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if want := Default(); !reflect.DeepEqual(got, want) {
		t.Fatalf("configs/labcloud.yaml = %+v, defaults = %+v", got, want)
	}
}

func TestLoad(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		wantErr string
		check   func(Config) bool
	}{
		{name: "empty file is defaults", yaml: "", check: func(c Config) bool { return c.Region == "lab-1" }},
		{name: "override region and zones", yaml: "region: lab-2\nzones: [lab-2a]\n", check: func(c Config) bool {
			return c.Region == "lab-2" && len(c.Zones) == 1 && c.Listen == "127.0.0.1:7420"
		}},
		{name: "unknown key", yaml: "regoin: lab-2\n", wantErr: "regoin"},
		{name: "zone outside region", yaml: "zones: [us-east-1a]\n", wantErr: `zone "us-east-1a" must be the region name plus one letter`},
		{name: "duplicate zone", yaml: "zones: [lab-1a, lab-1a]\n", wantErr: "listed twice"},
		{name: "bad listen", yaml: "listen: localhost\n", wantErr: "must be host:port"},
		{name: "bad prefix", yaml: "etcd: {prefix: labcloud}\n", wantErr: "etcd.prefix"},
		{name: "bad log level", yaml: "logLevel: loud\n", wantErr: "logLevel"},
		{name: "uplink is off by default", yaml: "", check: func(c Config) bool { return c.Network.Uplink == "" }},
		{name: "uplink", yaml: "network: {uplink: eno1}\n", check: func(c Config) bool { return c.Network.Uplink == "eno1" }},
		{name: "uplink not a name", yaml: "network: {uplink: \"eth 0\"}\n", wantErr: "network.uplink"},
		{name: "uplink and gateway", yaml: "network: {uplink: eno1, publicGateway: 203.0.113.2}\n", wantErr: "set one"},
		{name: "uplink is ours", yaml: "network: {uplink: lcpub}\n", wantErr: "namePrefix"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "c.yaml")
			if err := os.WriteFile(p, []byte(tt.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			c, err := Load(p)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to mention %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(c) {
				t.Fatalf("unexpected config %+v", c)
			}
		})
	}
}

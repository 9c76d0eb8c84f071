// Command labcloudd is the labcloud daemon: the AWS-compatible API, the
// controllers and (by default) an embedded etcd. It only parses flags and
// configuration; internal/daemon does the work.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/labcloud/labcloud/internal/config"
	"github.com/labcloud/labcloud/internal/daemon"
	"github.com/labcloud/labcloud/internal/version"
)

func main() {
	app := &cli.App{
		Name:    "labcloudd",
		Usage:   "the labcloud daemon: an AWS-compatible lab cloud (EC2, VPC, EBS, IAM) on this machine",
		Version: version.Version,
		Commands: []*cli.Command{{
			Name:  "serve",
			Usage: "serve the EC2/IAM/STS API with an embedded (or external) etcd",
			Description: `Starts the API on --listen (loopback by default) and keeps state in etcd:
an embedded single-member etcd under <state-dir>/etcd unless --etcd-endpoints
names an external cluster. On first start it creates an account and writes its
root access keys, the region and the endpoint to <state-dir>/admin-credentials
(mode 0600, aws shared-credentials format, profile "labcloud"); restarts reuse
them. As root it also runs EC2 instances: each account's default VPC as a
network namespace with DHCP and the metadata service, and QEMU VMs (state under
<state-dir>/vms and <state-dir>/instances) that keep running across labcloudd
restarts; without root the API still serves and instance actions answer
Unavailable. Flags override the config file; see configs/labcloud.yaml for
every key.`,
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Usage: "config file (YAML); defaults apply without one", EnvVars: []string{"LABCLOUD_CONFIG"}},
				&cli.StringFlag{Name: "state-dir", Usage: "state directory (default /var/lib/labcloud)"},
				&cli.StringFlag{Name: "listen", Usage: "API listen address host:port (default 127.0.0.1:7420; port 0 picks a free port)"},
				&cli.StringFlag{Name: "etcd-endpoints", Usage: "comma-separated external etcd endpoints (default: embedded etcd)"},
				&cli.StringFlag{Name: "log-level", Usage: "debug, info, warn or error (default info)"},
				&cli.StringFlag{Name: "net-prefix", Usage: "prefix of the network namespaces, bridges and taps this install creates (default lc)"},
				&cli.StringFlag{Name: "public-cidr", Usage: "pool of public and Elastic IPs; its first address goes on the host's public bridge (default 203.0.113.0/24)"},
				&cli.StringFlag{Name: "public-gateway", Usage: "the internet's next hop on the public bridge (default none: instances reach only this host and other public IPs)"},
				&cli.StringFlag{Name: "uplink", Usage: "a real interface of this host (e.g. eno1) to masquerade the public pool out of, so instances with public IPs reach the real network (default none: nothing leaves the host)"},
				&cli.BoolFlag{Name: "test-clock", Usage: "for tests only: POST /_labcloud/test/clock?advance=15m moves the clock credential expirations use"},
			},
			Action: serve,
		}},
	}
	if err := app.Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "labcloudd:", err)
		os.Exit(1)
	}
}

func serve(c *cli.Context) error {
	cfg, err := config.Load(c.String("config"))
	if err != nil {
		return err
	}
	if v := c.String("state-dir"); v != "" {
		cfg.StateDir = v
	}
	if v := c.String("listen"); v != "" {
		cfg.Listen = v
	}
	if v := c.String("etcd-endpoints"); v != "" {
		cfg.Etcd.Endpoints = strings.Split(v, ",")
	}
	if v := c.String("log-level"); v != "" {
		cfg.LogLevel = v
	}
	if v := c.String("net-prefix"); v != "" {
		cfg.Network.NamePrefix = v
	}
	if v := c.String("public-cidr"); v != "" {
		cfg.Network.PublicCIDR = v
	}
	if v := c.String("public-gateway"); v != "" {
		cfg.Network.PublicGateway = v
	}
	if v := c.String("uplink"); v != "" {
		cfg.Network.Uplink = v
	}
	cfg.TestClock = c.Bool("test-clock")
	if err := cfg.Validate(); err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return daemon.Run(ctx, cfg, log, nil)
}

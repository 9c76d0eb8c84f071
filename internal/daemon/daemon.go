// Package daemon runs labcloudd: it starts (or dials) etcd, seeds the
// install's shape and the first account, writes the admin credentials and
// serves the API until its context ends. cmd/labcloudd only turns flags
// into a config.Config and calls Run.
package daemon

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/labcloud/labcloud/api"
	"github.com/labcloud/labcloud/blockdev/qcow2"
	"github.com/labcloud/labcloud/hypervisor"
	"github.com/labcloud/labcloud/hypervisor/qemu"
	"github.com/labcloud/labcloud/iamd"
	"github.com/labcloud/labcloud/imagestore"
	"github.com/labcloud/labcloud/internal/clock"
	"github.com/labcloud/labcloud/internal/cloud"
	"github.com/labcloud/labcloud/internal/config"
	"github.com/labcloud/labcloud/internal/errdefs"
	"github.com/labcloud/labcloud/internal/instances"
	"github.com/labcloud/labcloud/internal/keypairs"
	"github.com/labcloud/labcloud/internal/store"
	"github.com/labcloud/labcloud/internal/store/embedded"
	"github.com/labcloud/labcloud/internal/tags"
	"github.com/labcloud/labcloud/internal/volumes"
	"github.com/labcloud/labcloud/netfab"
)

// Files under the state dir that users and tools read.
const (
	CredentialsFile = "admin-credentials"
	EndpointFile    = "endpoint"
	// Profile is the profile name in the admin-credentials file.
	Profile = "labcloud"
)

// Run serves until ctx is cancelled. ready, if not nil, is called once the
// API accepts requests, with the endpoint URL.
func Run(ctx context.Context, cfg config.Config, log *slog.Logger, ready func(endpoint string)) error {
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return fmt.Errorf("creating state dir: %w", err)
	}

	endpoints := cfg.Etcd.Endpoints
	if len(endpoints) == 0 {
		srv, err := embedded.Start(ctx, embedded.Config{DataDir: filepath.Join(cfg.StateDir, "etcd")})
		if err != nil {
			return fmt.Errorf("starting embedded etcd: %w", err)
		}
		defer srv.Close()
		endpoints = srv.Endpoints()
		log.Info("embedded etcd started", "dataDir", filepath.Join(cfg.StateDir, "etcd"), "endpoints", endpoints)
	} else {
		log.Info("using external etcd", "endpoints", endpoints)
	}
	cli, err := store.Dial(ctx, endpoints)
	if err != nil {
		return fmt.Errorf("connecting to etcd %v: %w", endpoints, err)
	}
	defer cli.Close()
	st := store.New(cli, cfg.Etcd.Prefix)

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", cfg.Listen, err)
	}
	defer ln.Close()
	endpoint := "http://" + ln.Addr().String()

	cl := cloud.New(st)
	if err := cl.Seed(ctx, cfg.Region, endpoint, cfg.Zones); err != nil {
		return err
	}
	accounts := iamd.NewAccounts(st)
	accounts.OnCreate = func(ctx context.Context, a iamd.Account) error {
		return cl.SeedAccount(ctx, a.ID, cloud.Limits{
			MaxInstances:                  cfg.Limits.MaxInstances,
			MaxElasticIPs:                 cfg.Limits.MaxElasticIPs,
			MaxSecurityGroupsPerInterface: cfg.Limits.MaxSecurityGroupsPerInterface,
		})
	}
	clk := &clock.Clock{}
	sessions := iamd.NewSessions(st, clk.Now)
	iam := iamd.NewIAM(st, accounts)
	msgKey, err := messageKey(ctx, st)
	if err != nil {
		return err
	}
	acct, key, err := accounts.Bootstrap(ctx, "admin")
	if err != nil {
		return fmt.Errorf("bootstrapping the first account: %w", err)
	}
	if err := writeCredentials(cfg.StateDir, endpoint, cfg.Region, acct, key); err != nil {
		return err
	}
	log.Info("account ready", "account", acct.ID, "credentials", filepath.Join(cfg.StateDir, CredentialsFile))

	keyPairs := keypairs.New(st)
	images := imagestore.New(st, filepath.Join(cfg.StateDir, "images"))
	tagStore := tags.New(st)
	tagStore.Register("ami-", images.Exists, "image")
	tagStore.Register("key-", keyPairs.Exists, "key-pair")

	vols, err := startVolumes(ctx, cfg, st, cl, log)
	if err != nil {
		// Everything else works without EBS; its actions answer
		// Unavailable with this reason in the log.
		log.Error("volumes are unavailable", "err", err)
	} else {
		defer vols.Close()
		tagStore.Register("vol-", vols.Exists, "volume")
		tagStore.Register("snap-", vols.SnapshotExists, "snapshot")
	}

	instanceRoles := iamd.NewInstanceRoles(iam, sessions)
	comp, stopCompute, err := startCompute(ctx, cfg, st, log, images, keyPairs, tagStore, instanceRoles, ln.Addr().String(), vols)
	if err != nil {
		// The API (IAM, STS, Describe*) still works without the compute
		// layer, e.g. when labcloudd runs unprivileged; instance actions
		// then answer Unavailable with this reason in the log.
		log.Error("instances are unavailable", "err", err)
	}
	defer stopCompute()

	var handler http.Handler = api.New(api.Options{
		Accounts: accounts, Cloud: cl, Region: cfg.Region, Logger: log,
		IAM: iam, Sessions: sessions,
		KeyPairs: keyPairs, Images: images, Tags: tagStore, Instances: comp.instances, Network: comp.fabric, Volumes: vols,
		Authorizer: &api.IAMAuthorizer{IAM: iam, Accounts: accounts, Now: clk.Now, Region: cfg.Region, MessageKey: msgKey},
	})
	if cfg.TestClock {
		handler = withTestClock(handler, clk, log)
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("labcloudd serving", "endpoint", endpoint, "region", cfg.Region, "zones", cfg.Zones)
	if ready != nil {
		ready(endpoint)
	}
	watchEtcd(ctx, cli, log)
	go sweepSessions(ctx, sessions, instanceRoles, log)

	select {
	case err := <-errc:
		return fmt.Errorf("serving API: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shutting down API: %w", err)
	}
	return nil
}

// startVolumes builds the EBS service over the qcow2 block store in
// <StateDir>/volumes and settles what a crash interrupted.
func startVolumes(ctx context.Context, cfg config.Config, st *store.Store, cl *cloud.Cloud, log *slog.Logger) (*volumes.Service, error) {
	be, err := qcow2.New(qcow2.Options{Dir: filepath.Join(cfg.StateDir, "volumes")})
	if err != nil {
		return nil, err
	}
	// BootDir sits beside the images directory on the same file system,
	// so CreateImage's snapshots hard-link the AMI's kernel and initrd.
	svc := volumes.New(volumes.Options{Store: st, Backend: be, Region: cfg.Region, Logger: log.With("component", "volumes"),
		BootDir: filepath.Join(cfg.StateDir, "snapshot-boot"),
		Zones: func(ctx context.Context) ([]string, error) {
			zs, err := cl.Zones(ctx)
			names := make([]string, 0, len(zs))
			for _, z := range zs {
				names = append(names, z.Name)
			}
			return names, err
		}})
	if err := svc.Recover(ctx); err != nil {
		svc.Close()
		return nil, err
	}
	return svc, nil
}

// startCompute builds the network fabric (restoring namespaces, bridges,
// taps, DHCP and metadata servers from etcd), the QEMU driver and the
// instance controller. It needs root (network namespaces, taps).
// publicGateway is network.publicGateway as an address (invalid: none).
func publicGateway(cfg config.Config) netip.Addr {
	a, _ := netip.ParseAddr(cfg.Network.PublicGateway)
	return a
}

// compute is what startCompute built; both nil when it failed.
type compute struct {
	instances *instances.Service
	fabric    *netfab.Fabric
}

func startCompute(ctx context.Context, cfg config.Config, st *store.Store, log *slog.Logger, images *imagestore.Catalogue, keyPairs *keypairs.KeyPairs, tagStore *tags.Tags, roles *iamd.InstanceRoles, apiAddr string, vols *volumes.Service) (compute, func(), error) {
	noop := func() {}
	md := &metadataAdapter{roles: roles, log: log.With("component", "imds")}
	fabric, err := netfab.New(ctx, netfab.Options{Store: st, Zones: cfg.Zones, NamePrefix: cfg.Network.NamePrefix,
		Metadata: md, Logger: log.With("component", "netfab"), APIAddr: apiAddr, PublicGateway: publicGateway(cfg),
		PublicCIDR: netip.MustParsePrefix(cfg.Network.PublicCIDR), // Validate checked it
		Uplink:     cfg.Network.Uplink})
	if err != nil {
		return compute{}, noop, fmt.Errorf("starting the network fabric: %w", err)
	}
	if err := fabric.Reconcile(ctx); err != nil {
		fabric.Close()
		return compute{}, noop, fmt.Errorf("restoring the network fabric: %w", err)
	}
	driver, err := qemu.New(qemu.Options{RunDir: filepath.Join(cfg.StateDir, "vms"), Logger: log.With("component", "qemu")})
	if err != nil {
		fabric.Close()
		return compute{}, noop, fmt.Errorf("starting the QEMU driver: %w", err)
	}
	svc, err := instances.New(instances.Options{
		Store: st, Driver: driver, Network: networkAdapter{fabric}, Images: imagesAdapter{images},
		KeyPairs: keyPairsAdapter{keyPairs}, Volumes: vols, Region: cfg.Region, StateDir: cfg.StateDir,
		VCPUOvercommit: cfg.Instances.VCPUOvercommit, MemoryOvercommit: cfg.Instances.MemoryOvercommit,
		AccountVCPULimit: cfg.Instances.AccountVCPULimit, MaxGuestMemoryMiB: cfg.Instances.MaxGuestMemoryMiB,
		Logger: log.With("component", "instances"),
		Forget: func(ctx context.Context, acct, id string) {
			if err := tagStore.Forget(ctx, acct, id); err != nil {
				log.Warn("could not remove the tags of a deleted instance", "instance", id, "err", err)
			}
		},
	})
	if err != nil {
		driver.Close()
		fabric.Close()
		return compute{}, noop, fmt.Errorf("starting the instance service: %w", err)
	}
	md.set(svc, fabric)
	if vols != nil {
		// Modify and snapshot of attached volumes go through the VM.
		be, _ := vols.Backend().(*qcow2.Backend)
		live := liveVolumes{Attached: svc.VolumeHooks(), drv: driver, be: be, log: log.With("component", "volumes")}
		vols.SetAttached(live)
		live.settleLiveOverlays(ctx)
	}
	for prefix, kind := range map[string]string{"vpc-": "vpc", "subnet-": "subnet", "rtb-": "route-table",
		"igw-": "internet-gateway", "eipalloc-": "elastic-ip", "nat-": "natgateway", "eni-": "network-interface"} {
		tagStore.Register(prefix, fabric.Exists, kind)
	}
	tagStore.Register("sg-", fabric.SecurityGroupExists, "security-group")
	tagStore.Register("sgr-", fabric.SecurityGroupRuleExists, "security-group-rule")
	tagStore.Register("acl-", fabric.NetworkACLExists, "network-acl")
	tagStore.Register("i-", func(ctx context.Context, acct, id string) (bool, error) {
		_, err := svc.Get(ctx, acct, id)
		if errdefs.Is(err, errdefs.ClassNotFound) || errdefs.Is(err, errdefs.ClassInvalidParameter) {
			return false, nil
		}
		return err == nil, err
	}, "instance")
	if err := migrateInstanceTags(ctx, st, svc, tagStore); err != nil {
		log.Warn("could not move instance tags into the tag store", "err", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := svc.RunController(cctx); err != nil && cctx.Err() == nil {
			log.Error("instance controller stopped", "err", err)
		}
	}()
	accel, reason := hypervisor.DetectAccel()
	log.Info("compute ready", "accel", accel, "why", reason, "vms", filepath.Join(cfg.StateDir, "vms"))
	return compute{instances: svc, fabric: fabric}, func() {
		cancel()
		<-done
		driver.Close()
		fabric.Close() // VMs keep running with their taps; DHCP/IMDS come back at the next start
	}, nil
}

// migrateInstanceTags moves, once, the launch tags that earlier versions
// kept only in instance records into the tag store, which now holds every
// resource's tags.
func migrateInstanceTags(ctx context.Context, st *store.Store, svc *instances.Service, tagStore *tags.Tags) error {
	const done = "migrations/instance-tags"
	var ok bool
	if _, err := st.Get(ctx, done, &ok); err == nil {
		return nil
	}
	all, err := svc.AllInstances(ctx)
	if err != nil {
		return err
	}
	for _, i := range all {
		if len(i.Tags) == 0 {
			continue
		}
		have, err := tagStore.Of(ctx, i.AccountID, i.ID)
		if err != nil {
			return err
		}
		var add []tags.Tag
		for _, t := range i.Tags {
			if _, set := have[t.Key]; !set {
				add = append(add, tags.Tag{Key: t.Key, Value: t.Value})
			}
		}
		if err := tagStore.Apply(ctx, i.AccountID, i.ID, add); err != nil {
			return err
		}
	}
	_, err = st.Create(ctx, done, true)
	if errors.Is(err, store.ErrExists) {
		err = nil
	}
	return err
}

// messageKey loads the key that encrypts EC2's encoded authorization
// failure messages, creating it on first start; keeping it in etcd lets
// every labcloudd of the install decode every message.
func messageKey(ctx context.Context, st *store.Store) ([]byte, error) {
	fresh := make([]byte, 32)
	if _, err := rand.Read(fresh); err != nil {
		return nil, err
	}
	if _, err := st.Create(ctx, "config/authz-message-key", base64.StdEncoding.EncodeToString(fresh)); err != nil && !errors.Is(err, store.ErrExists) {
		return nil, fmt.Errorf("storing the authorization message key: %w", err)
	}
	var enc string
	if _, err := st.Get(ctx, "config/authz-message-key", &enc); err != nil {
		return nil, fmt.Errorf("reading the authorization message key: %w", err)
	}
	return base64.StdEncoding.DecodeString(enc)
}

// sweepSessions removes long-expired temporary credentials every ten
// minutes.
func sweepSessions(ctx context.Context, sessions *iamd.Sessions, roles *iamd.InstanceRoles, log *slog.Logger) {
	t := time.NewTicker(10 * time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if n, err := sessions.Sweep(ctx); err != nil && ctx.Err() == nil {
				log.Warn("sweeping expired sessions", "err", err)
			} else if n > 0 {
				log.Debug("swept expired sessions", "count", n)
			}
			if _, err := roles.Sweep(ctx); err != nil && ctx.Err() == nil {
				log.Warn("sweeping instance credential records", "err", err)
			}
		}
	}
}

// withTestClock serves POST /_labcloud/test/clock?advance=DURATION (only
// with --test-clock) and passes everything else on.
func withTestClock(next http.Handler, clk *clock.Clock, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/_labcloud/test/clock" {
			next.ServeHTTP(w, r)
			return
		}
		if r.Method != http.MethodPost {
			http.Error(w, "POST /_labcloud/test/clock?advance=15m", http.StatusMethodNotAllowed)
			return
		}
		d, err := time.ParseDuration(r.URL.Query().Get("advance"))
		if err != nil || d < 0 {
			http.Error(w, "advance must be a positive Go duration such as 901s or 15m", http.StatusBadRequest)
			return
		}
		now := clk.Advance(d)
		log.Warn("test clock advanced", "by", d, "now", now)
		fmt.Fprintln(w, now.UTC().Format(time.RFC3339))
	})
}

// watchEtcd logs when etcd becomes unreachable, because every API call
// will then fail with InternalError and the log should say why.
func watchEtcd(ctx context.Context, cli *clientv3.Client, log *slog.Logger) {
	go func() {
		t := time.NewTicker(30 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				c, cancel := context.WithTimeout(ctx, 5*time.Second)
				_, err := cli.Get(c, "health")
				cancel()
				if err != nil && ctx.Err() == nil {
					log.Error("etcd unreachable", "err", err)
				}
			}
		}
	}()
}

// writeCredentials writes the root key in the aws shared-credentials format
// (profile "labcloud") with the endpoint and region, mode 0600, atomically.
// botocore merges the credentials file into its profiles, so region and
// endpoint_url here are honoured without a separate config file.
func writeCredentials(stateDir, endpoint, region string, a iamd.Account, k iamd.AccessKey) error {
	content := fmt.Sprintf(`# labcloud admin credentials: root user of account %s (%s).
# Keep this file private. The aws CLI and boto3 read the region and the
# endpoint from it too:
#   AWS_SHARED_CREDENTIALS_FILE=%[3]s aws --profile %[4]s ec2 describe-regions
[%[4]s]
aws_access_key_id = %[6]s
aws_secret_access_key = %[7]s
region = %[8]s
endpoint_url = %[5]s
`, a.ID, a.Name, filepath.Join(stateDir, CredentialsFile), Profile, endpoint, k.AccessKeyID, k.SecretAccessKey, region)
	if err := writeFileAtomic(filepath.Join(stateDir, CredentialsFile), []byte(content), 0o600); err != nil {
		return fmt.Errorf("writing admin credentials: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(stateDir, EndpointFile), []byte(endpoint+"\n"), 0o644); err != nil {
		return fmt.Errorf("writing endpoint file: %w", err)
	}
	return nil
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

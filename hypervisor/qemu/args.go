package qemu

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/labcloud/labcloud/hypervisor"
)

// BuildArgs renders the QEMU command line (without the binary) for cfg.
// It is pure: the same Config always gives the same arguments, which the
// golden files in testdata pin down. Every choice below is made here and
// nowhere else:
//
//   - -nodefaults -no-user-config -display none: only the devices listed
//     here exist, whatever the host's QEMU config says.
//   - q35 with one PCIe root port per device plus spares: devices on the
//     root bus cannot be hot-unplugged, devices behind root ports can, so
//     every disk and NIC (boot-time or hot-plugged) sits behind its own.
//   - disks as -blockdev node chains (file → format → throttle) plus a
//     virtio-blk device, in JSON so no path needs escaping; the same nodes
//     are what hot-plug adds over QMP. Every disk gets a throttle group,
//     unlimited when the Disk has no limits, so I/O limits can change on a
//     running VM without changing the node graph.
//   - the serial console on a socket chardev with a logfile: everything is
//     logged (GetConsoleOutput) and the socket is reachable interactively.
//   - -no-shutdown: when the guest powers off, QEMU stays (paused, status
//     "shutdown") instead of exiting, so a driver that was not attached at
//     that moment still learns that it was a power-off and not a crash.
//     The driver then quits QEMU.
//   - -daemonize -pidfile: QEMU detaches once its sockets are listening
//     and outlives labcloudd; QEMU holds a lock on the pidfile, so a second
//     QEMU for the same VM cannot start.
func BuildArgs(cfg Config) []string {
	var a []string
	add := func(s ...string) { a = append(a, s...) }

	add("-name", opts("guest="+cfg.Name, "debug-threads=on"))
	if cfg.SMBIOS.UUID != "" {
		add("-uuid", cfg.SMBIOS.UUID)
	}
	add("-nodefaults", "-no-user-config", "-display", "none")
	add("-machine", "q35")
	switch cfg.Accel {
	case hypervisor.AccelKVM:
		add("-accel", "kvm")
	default:
		add("-accel", "tcg,thread=multi")
	}
	cpu := cfg.CPUModel
	if cpu == "" {
		cpu = "max"
		if cfg.Accel == hypervisor.AccelKVM {
			cpu = "host"
		}
	}
	add("-cpu", cpu)
	add("-smp", strconv.Itoa(cfg.VCPUs))
	add("-m", strconv.Itoa(cfg.MemoryMiB)+"M")
	add("-no-shutdown")
	add("-msg", "timestamp=on")

	add(smbiosArgs(cfg.SMBIOS)...)

	if cfg.Kernel != "" {
		add("-kernel", cfg.Kernel)
		if cfg.Initrd != "" {
			add("-initrd", cfg.Initrd)
		}
		if cfg.Append != "" {
			add("-append", cfg.Append)
		}
	}

	// Control and console.
	add("-chardev", opts("socket", "id=qmp", "path="+cfg.Files.QMPSocket, "server=on", "wait=off"))
	add("-mon", "chardev=qmp,mode=control")
	add("-chardev", opts("socket", "id=console", "path="+cfg.Files.ConsoleSocket, "server=on", "wait=off",
		"logfile="+cfg.Files.ConsoleLog, "logappend=on"))
	add("-serial", "chardev:console")

	// Entropy for the guest (ssh host keys on first boot).
	add("-object", "rng-random,id=rng0,filename=/dev/urandom")
	add("-device", "virtio-rng-pci,id=rng,rng=rng0,bus=pcie.0,addr=0x1")

	for i := 0; i < cfg.Ports; i++ {
		add("-device", rootPortDevice(i).arg())
	}
	for _, d := range cfg.Disks {
		if d.KeyFile != "" {
			add("-object", opts("secret", "id="+secretID(d.ID), "file="+d.KeyFile, "format=raw"))
		}
		add("-object", mustJSON(throttleGroupObject(d.ID, d.Throttle)))
		for _, n := range diskNodes(d) {
			add("-blockdev", mustJSON(n))
		}
		add("-device", diskDevice(d).arg())
	}
	for _, n := range cfg.NICs {
		add("-netdev", opts(netdevOpts(n.NIC)...))
		add("-device", nicDevice(n).arg())
	}

	if cfg.Daemonize {
		add("-daemonize")
	}
	if cfg.Files.PIDFile != "" {
		add("-pidfile", cfg.Files.PIDFile)
	}
	return a
}

// escapeOpt doubles commas, QEMU's escape inside a key=value list.
func escapeOpt(s string) string { return strings.ReplaceAll(s, ",", ",,") }

// opts joins key=value options, escaping the values.
func opts(kv ...string) string {
	out := make([]string, len(kv))
	for i, s := range kv {
		if k, v, ok := strings.Cut(s, "="); ok {
			out[i] = k + "=" + escapeOpt(v)
		} else {
			out[i] = s
		}
	}
	return strings.Join(out, ",")
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("qemu: encoding %T: %v", v, err)) // only fixed struct types reach here
	}
	return string(b)
}

func smbiosArgs(s hypervisor.SMBIOS) []string {
	var a []string
	table := func(kv ...string) {
		var set []string
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] != "" {
				set = append(set, kv[i]+"="+kv[i+1])
			}
		}
		if len(set) > 1 { // more than the type=N itself
			a = append(a, "-smbios", opts(set...))
		}
	}
	table("type", "0", "vendor", s.Manufacturer)
	table("type", "1", "manufacturer", s.Manufacturer, "product", s.Product, "version", s.Version,
		"serial", s.Serial, "family", s.Family)
	table("type", "2", "manufacturer", s.Manufacturer, "product", s.Product)
	table("type", "3", "manufacturer", s.Manufacturer, "asset", s.AssetTag)
	return a
}

// device is a -device / device_add in one ordered form, so the command
// line and hot-plug cannot drift apart.
type device struct {
	driver string
	props  []prop
}

type prop struct {
	k string
	v any // string, int or bool
}

func (d device) arg() string {
	kv := []string{d.driver}
	for _, p := range d.props {
		switch v := p.v.(type) {
		case bool:
			kv = append(kv, p.k+"="+map[bool]string{true: "on", false: "off"}[v])
		default:
			kv = append(kv, fmt.Sprintf("%s=%v", p.k, v))
		}
	}
	return opts(kv...)
}

func (d device) qmp() map[string]any {
	m := map[string]any{"driver": d.driver}
	for _, p := range d.props {
		m[p.k] = p.v
	}
	return m
}

func rootPortDevice(i int) device {
	slot, fn := 2+i/8, i%8
	props := []prop{
		{"id", portID(i)},
		{"bus", "pcie.0"},
		{"chassis", i + 1},
		{"port", 0x10 + i},
		{"addr", fmt.Sprintf("0x%x.0x%x", slot, fn)},
	}
	if fn == 0 {
		props = append(props, prop{"multifunction", true})
	}
	return device{driver: "pcie-root-port", props: props}
}

// Names QEMU knows a device's parts by. Node names must stay under 32
// characters, which the 24-character device id limit guarantees.
func fileNode(id string) string      { return "file-" + id }
func formatNode(id string) string    { return "fmt-" + id }
func throttleNode(id string) string  { return "thr-" + id }
func throttleGroup(id string) string { return "tg-" + id }
func secretID(id string) string      { return "sec-" + id }
func diskDeviceID(id string) string  { return "blk-" + id }
func netdevID(id string) string      { return "nd-" + id }
func nicDeviceID(id string) string   { return "net-" + id }

type cacheOpts struct {
	Direct  bool `json:"direct"`
	NoFlush bool `json:"no-flush"`
}

// cacheMode maps -drive cache= names onto blockdev's two knobs and the
// device's write-cache (writethrough and directsync tell the guest there
// is no volatile cache, so it does not need to flush).
func cacheMode(mode string) (c *cacheOpts, writeCache bool) {
	switch mode {
	case "none":
		return &cacheOpts{Direct: true}, true
	case "writethrough":
		return nil, false
	case "directsync":
		return &cacheOpts{Direct: true}, false
	case "unsafe":
		return &cacheOpts{NoFlush: true}, true
	}
	return nil, true
}

type fileNodeOpts struct {
	Driver   string     `json:"driver"`
	NodeName string     `json:"node-name"`
	Filename string     `json:"filename"`
	ReadOnly bool       `json:"read-only"`
	Cache    *cacheOpts `json:"cache,omitempty"`
	AIO      string     `json:"aio,omitempty"`
	Discard  string     `json:"discard"`
}

type formatNodeOpts struct {
	Driver   string     `json:"driver"`
	NodeName string     `json:"node-name"`
	File     string     `json:"file"`
	ReadOnly bool       `json:"read-only"`
	Cache    *cacheOpts `json:"cache,omitempty"`
	Discard  string     `json:"discard"`
	// Encrypt and Backing only for encrypted disks (see
	// blockdev/qcow2.FormatNodeOptions): the key at the disk and at
	// every encrypted layer, each layer opened explicitly.
	Encrypt *encryptOpts `json:"encrypt,omitempty"`
	Backing *layerOpts   `json:"backing,omitempty"`
}

type encryptOpts struct {
	Format    string `json:"format"`
	KeySecret string `json:"key-secret"`
}

type layerFileOpts struct {
	Driver   string `json:"driver"`
	Filename string `json:"filename"`
	ReadOnly bool   `json:"read-only"`
}

type layerOpts struct {
	Driver   string        `json:"driver"`
	ReadOnly bool          `json:"read-only"`
	File     layerFileOpts `json:"file"`
	Encrypt  *encryptOpts  `json:"encrypt,omitempty"`
	Backing  *layerOpts    `json:"backing,omitempty"`
}

// backingChain nests d's backing layers, nearest first.
func backingChain(d DiskConfig) *layerOpts {
	var top, cur *layerOpts
	for _, l := range d.Backing {
		n := &layerOpts{Driver: string(l.Format), ReadOnly: true, File: layerFileOpts{Driver: "file", Filename: l.Path, ReadOnly: true}}
		if l.Encrypted {
			n.Encrypt = &encryptOpts{Format: "luks", KeySecret: secretID(d.ID)}
		}
		if top == nil {
			top = n
		} else {
			cur.Backing = n
		}
		cur = n
	}
	return top
}

type throttleNodeOpts struct {
	Driver        string `json:"driver"`
	NodeName      string `json:"node-name"`
	ThrottleGroup string `json:"throttle-group"`
	File          string `json:"file"`
	ReadOnly      bool   `json:"read-only"`
}

// throttleLimits is QEMU's ThrottleLimits. All six fields are always
// sent: qom-set keeps the old value of a field that is absent.
type throttleLimits struct {
	IOPSTotal int64 `json:"iops-total"`
	IOPSRead  int64 `json:"iops-read"`
	IOPSWrite int64 `json:"iops-write"`
	BPSTotal  int64 `json:"bps-total"`
	BPSRead   int64 `json:"bps-read"`
	BPSWrite  int64 `json:"bps-write"`
}

type throttleGroupOpts struct {
	QOMType string         `json:"qom-type"`
	ID      string         `json:"id"`
	Limits  throttleLimits `json:"limits"`
}

func toLimits(t *hypervisor.Throttle) throttleLimits {
	if t == nil {
		return throttleLimits{}
	}
	return throttleLimits{
		IOPSTotal: t.IOPSTotal, IOPSRead: t.IOPSRead, IOPSWrite: t.IOPSWrite,
		BPSTotal: t.BPSTotal, BPSRead: t.BPSRead, BPSWrite: t.BPSWrite,
	}
}

func throttleGroupObject(diskID string, t *hypervisor.Throttle) throttleGroupOpts {
	return throttleGroupOpts{QOMType: "throttle-group", ID: throttleGroup(diskID), Limits: toLimits(t)}
}

// diskNodes returns the block node chain of a disk, bottom first (the
// order blockdev-add needs; blockdev-del goes the other way).
func diskNodes(d DiskConfig) []any {
	cache, _ := cacheMode(d.Cache)
	drv := "file"
	if d.HostDevice {
		drv = "host_device"
	}
	fmtNode := formatNodeOpts{Driver: string(d.Format), NodeName: formatNode(d.ID), File: fileNode(d.ID),
		ReadOnly: d.ReadOnly, Cache: cache, Discard: "unmap"}
	if d.KeyFile != "" {
		fmtNode.Encrypt = &encryptOpts{Format: "luks", KeySecret: secretID(d.ID)}
		fmtNode.Backing = backingChain(d)
	}
	return []any{
		fileNodeOpts{Driver: drv, NodeName: fileNode(d.ID), Filename: d.Path, ReadOnly: d.ReadOnly,
			Cache: cache, AIO: d.AIO, Discard: "unmap"},
		fmtNode,
		throttleNodeOpts{Driver: "throttle", NodeName: throttleNode(d.ID), ThrottleGroup: throttleGroup(d.ID),
			File: formatNode(d.ID), ReadOnly: d.ReadOnly},
	}
}

func diskDevice(d DiskConfig) device {
	_, writeCache := cacheMode(d.Cache)
	props := []prop{
		{"id", diskDeviceID(d.ID)},
		{"drive", throttleNode(d.ID)},
		{"bus", d.Port},
	}
	if d.Serial != "" {
		props = append(props, prop{"serial", d.Serial})
	}
	if !writeCache {
		props = append(props, prop{"write-cache", false})
	}
	if d.BootIndex > 0 {
		props = append(props, prop{"bootindex", d.BootIndex})
	}
	return device{driver: "virtio-blk-pci", props: props}
}

// netdevOpts is the tap backend; the tap exists already (the network
// fabric made it), so no scripts run. No vhost: vhost-net is not
// available on every host labcloud runs on.
func netdevOpts(n hypervisor.NIC) []string {
	return []string{"tap", "id=" + netdevID(n.ID), "ifname=" + n.Tap, "script=no", "downscript=no"}
}

func netdevQMP(n hypervisor.NIC) map[string]any {
	return map[string]any{"type": "tap", "id": netdevID(n.ID), "ifname": n.Tap, "script": "no", "downscript": "no"}
}

func nicDevice(n NICConfig) device {
	return device{driver: "virtio-net-pci", props: []prop{
		{"id", nicDeviceID(n.ID)},
		{"netdev", netdevID(n.ID)},
		{"mac", strings.ToLower(n.MAC)},
		{"bus", n.Port},
	}}
}

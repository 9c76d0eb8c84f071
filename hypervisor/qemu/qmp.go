package qemu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/digitalocean/go-qemu/qmp"
)

// Sentinel errors of the QMP client; test with errors.Is.
var (
	// ErrDisconnected means the QMP connection is gone: QEMU exited, or
	// the connection was closed. Commands never succeed on it again; dial
	// a new Monitor when QEMU runs.
	ErrDisconnected = errors.New("qmp: disconnected from QEMU")
	// ErrTimeout means QEMU did not answer (or an awaited event did not
	// come) before the deadline. The connection stays usable: answers are
	// matched to commands by id, so a late answer is dropped.
	ErrTimeout = errors.New("qmp: timed out waiting for QEMU")
)

// CommandError is QEMU's own error answer to a command, e.g. a
// device_del of an unknown id. It is neither a disconnect nor a timeout.
type CommandError struct {
	Command string
	// Class is QEMU's error class: GenericError, DeviceNotFound, …
	Class   string
	Message string
}

func (e *CommandError) Error() string { return "qmp " + e.Command + ": " + e.Message }

// Event is an asynchronous QMP event (SHUTDOWN, DEVICE_DELETED, …).
type Event = qmp.Event

// DefaultCommandTimeout bounds a command whose context has no deadline.
const DefaultCommandTimeout = 10 * time.Second

// Monitor is a QMP connection to one QEMU process: commands with contexts
// and timeouts, sentinel errors, and event fan-out to any number of
// subscribers. It speaks go-qemu's types (qmp.Event, qmp.Version) and
// offers itself as a go-qemu qmp.Monitor (GoQEMU), so go-qemu's generated
// raw commands work on it too.
//
// Why not go-qemu's qmp.SocketMonitor itself: in the only version the
// module proxy serves (v0.0.0-20250212194115-ee9b0668d242) its reader
// hands bufio.Scanner.Bytes() to the waiting command, and the next line
// read from the socket (an event arriving meanwhile, say
// NIC_RX_FILTER_CHANGED during a hot-plug) overwrites the answer while it
// is being decoded: the race detector catches it in this package's tests
// (upstream issue digitalocean/go-qemu#226, open). Its handshake also
// takes an event that arrives before the qmp_capabilities answer for that
// answer, putting every later answer one command off (#210). This
// connection copies every message, waits for the handshake answer by id,
// and matches all answers to commands by id, so a late answer after a
// timeout is dropped instead of being taken for the next command's.
//
// QEMU serves one QMP client per monitor socket at a time; a second client
// gets no greeting until the first disconnects, which Dial reports as
// ErrTimeout.
type Monitor struct {
	c       net.Conn
	version qmp.Version

	wmu sync.Mutex // one writer at a time

	mu      sync.Mutex
	nextID  uint64
	pending map[string]chan answer
	subs    map[int]chan Event
	nextSub int
	err     error         // why the connection ended
	done    chan struct{} // closed when it has

	closeOnce sync.Once
}

type answer struct {
	ret json.RawMessage
	err *CommandError
}

// message is anything QEMU sends after the greeting.
type message struct {
	ID     string          `json:"id"`
	Return json.RawMessage `json:"return"`
	Error  *struct {
		Class string `json:"class"`
		Desc  string `json:"desc"`
	} `json:"error"`
	Event     string         `json:"event"`
	Data      map[string]any `json:"data"`
	Timestamp struct {
		Seconds      int64 `json:"seconds"`
		Microseconds int64 `json:"microseconds"`
	} `json:"timestamp"`
}

// Dial connects to the QMP unix socket at path and negotiates
// capabilities. ctx (or DefaultCommandTimeout when it has no deadline)
// bounds the connect and the handshake.
func Dial(ctx context.Context, path string) (*Monitor, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultCommandTimeout)
		defer cancel()
	}
	var dialer net.Dialer
	c, err := dialer.DialContext(ctx, "unix", path)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("connecting to QMP socket %s: %w", path, ErrTimeout)
		}
		return nil, fmt.Errorf("connecting to QMP socket %s: %w (%v)", path, ErrDisconnected, err)
	}
	dl, _ := ctx.Deadline()
	c.SetDeadline(dl)
	dec := json.NewDecoder(c)
	var greeting struct {
		QMP struct {
			Version      qmp.Version `json:"version"`
			Capabilities []string    `json:"capabilities"`
		} `json:"QMP"`
	}
	fail := func(step string, err error) (*Monitor, error) {
		c.Close()
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil, fmt.Errorf("QMP %s on %s: no answer (is another client attached?): %w", step, path, ErrTimeout)
		}
		return nil, fmt.Errorf("QMP %s on %s: %w (%v)", step, path, ErrDisconnected, err)
	}
	if err := dec.Decode(&greeting); err != nil {
		return fail("greeting", err)
	}
	if _, err := c.Write([]byte(`{"execute":"qmp_capabilities","id":"handshake"}` + "\n")); err != nil {
		return fail("handshake", err)
	}
	for {
		var msg message
		if err := dec.Decode(&msg); err != nil {
			return fail("handshake", err)
		}
		if msg.Event != "" || msg.ID != "handshake" {
			continue // nobody can have subscribed yet
		}
		if msg.Error != nil {
			c.Close()
			return nil, fmt.Errorf("QMP handshake on %s: %s", path, msg.Error.Desc)
		}
		break
	}
	c.SetDeadline(time.Time{})
	m := &Monitor{
		c: c, version: greeting.QMP.Version,
		pending: map[string]chan answer{}, subs: map[int]chan Event{}, done: make(chan struct{}),
	}
	go m.read(dec)
	return m, nil
}

// Version is the QEMU version from the greeting.
func (m *Monitor) Version() qmp.Version { return m.version }

// read dispatches everything QEMU sends: answers to their command by id,
// events to every subscriber. It never blocks on a slow consumer: a
// subscriber whose buffer is full misses events.
func (m *Monitor) read(dec *json.Decoder) {
	var err error
	for {
		var msg message
		if err = dec.Decode(&msg); err != nil {
			break
		}
		m.mu.Lock()
		switch {
		case msg.Event != "":
			ev := Event{Event: msg.Event, Data: msg.Data}
			ev.Timestamp.Seconds, ev.Timestamp.Microseconds = msg.Timestamp.Seconds, msg.Timestamp.Microseconds
			for _, ch := range m.subs {
				select {
				case ch <- ev:
				default:
				}
			}
		default:
			if ch, ok := m.pending[msg.ID]; ok {
				delete(m.pending, msg.ID)
				a := answer{ret: msg.Return}
				if msg.Error != nil {
					a.err = &CommandError{Class: msg.Error.Class, Message: msg.Error.Desc}
				}
				ch <- a // buffered, never blocks
			}
			// else: the answer to a command that timed out; dropped.
		}
		m.mu.Unlock()
	}
	m.mu.Lock()
	m.err = err
	for id, ch := range m.subs {
		close(ch)
		delete(m.subs, id)
	}
	m.pending = map[string]chan answer{}
	close(m.done)
	m.mu.Unlock()
}

// Subscribe returns a channel of every event from now on, closed when the
// connection ends or cancel is called. Subscribe before issuing the
// command whose event you wait for, so it cannot be missed.
func (m *Monitor) Subscribe() (events <-chan Event, cancel func()) {
	ch := make(chan Event, 128)
	m.mu.Lock()
	select {
	case <-m.done:
		m.mu.Unlock()
		close(ch)
		return ch, func() {}
	default:
	}
	id := m.nextSub
	m.nextSub++
	m.subs[id] = ch
	m.mu.Unlock()
	return ch, func() {
		m.mu.Lock()
		if c, ok := m.subs[id]; ok {
			delete(m.subs, id)
			close(c)
		}
		m.mu.Unlock()
	}
}

// Done is closed when the connection is gone.
func (m *Monitor) Done() <-chan struct{} { return m.done }

// Close disconnects. QEMU keeps running; a later Dial reconnects.
func (m *Monitor) Close() error {
	m.closeOnce.Do(func() {
		m.c.Close()
		<-m.done
	})
	return nil
}

// Run executes one QMP command. args (any JSON-marshalable value, nil for
// none) becomes "arguments"; the "return" value is decoded into resp
// unless resp is nil. Errors: ErrDisconnected, ErrTimeout (ctx's deadline,
// or DefaultCommandTimeout when it has none), ctx.Err() on cancellation,
// *CommandError for QEMU's own error answer.
func (m *Monitor) Run(ctx context.Context, cmd string, args any, resp any) error {
	ret, err := m.run(ctx, cmd, args)
	if err != nil {
		return err
	}
	if resp == nil {
		return nil
	}
	if err := json.Unmarshal(ret, resp); err != nil {
		return fmt.Errorf("qmp %s: decoding answer %s: %w", cmd, ret, err)
	}
	return nil
}

func (m *Monitor) run(ctx context.Context, cmd string, args any) (json.RawMessage, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultCommandTimeout)
		defer cancel()
	}
	ch := make(chan answer, 1)
	m.mu.Lock()
	select {
	case <-m.done:
		m.mu.Unlock()
		return nil, fmt.Errorf("qmp %s: %w", cmd, ErrDisconnected)
	default:
	}
	m.nextID++
	id := "lc-" + strconv.FormatUint(m.nextID, 10)
	m.pending[id] = ch
	m.mu.Unlock()
	forget := func() {
		m.mu.Lock()
		delete(m.pending, id)
		m.mu.Unlock()
	}

	raw, err := json.Marshal(struct {
		Execute string `json:"execute"`
		Args    any    `json:"arguments,omitempty"`
		ID      string `json:"id"`
	}{cmd, args, id})
	if err != nil {
		forget()
		return nil, fmt.Errorf("qmp %s: encoding arguments: %w", cmd, err)
	}
	m.wmu.Lock()
	dl, _ := ctx.Deadline()
	m.c.SetWriteDeadline(dl)
	_, err = m.c.Write(append(raw, '\n'))
	m.wmu.Unlock()
	if err != nil {
		forget()
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil, fmt.Errorf("qmp %s: %w", cmd, ErrTimeout)
		}
		return nil, fmt.Errorf("qmp %s: %w (%v)", cmd, ErrDisconnected, err)
	}

	select {
	case a := <-ch:
		if a.err != nil {
			a.err.Command = cmd
			return nil, a.err
		}
		return a.ret, nil
	case <-m.done:
		return nil, fmt.Errorf("qmp %s: %w", cmd, ErrDisconnected)
	case <-ctx.Done():
		forget()
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, fmt.Errorf("qmp %s: %w", cmd, ErrTimeout)
		}
		return nil, fmt.Errorf("qmp %s: %w", cmd, ctx.Err())
	}
}

// WaitEvent waits on a subscription for the first event that match
// accepts. It returns ErrTimeout at ctx's deadline and ErrDisconnected if
// the connection ends first.
func WaitEvent(ctx context.Context, events <-chan Event, match func(Event) bool) (Event, error) {
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				return Event{}, ErrDisconnected
			}
			if match(ev) {
				return ev, nil
			}
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return Event{}, ErrTimeout
			}
			return Event{}, ctx.Err()
		}
	}
}

// ShutdownInfo is the data of a SHUTDOWN event.
type ShutdownInfo struct {
	// Guest is true when the guest caused it (power-off, reboot with
	// -no-reboot, panic with -action panic=shutdown).
	Guest bool
	// Reason is QEMU's ShutdownCause: guest-shutdown, host-qmp-quit,
	// host-signal, guest-panic, …
	Reason string
}

// ShutdownOf decodes a SHUTDOWN event; ok is false for other events.
func ShutdownOf(ev Event) (info ShutdownInfo, ok bool) {
	if ev.Event != "SHUTDOWN" {
		return ShutdownInfo{}, false
	}
	info.Guest, _ = ev.Data["guest"].(bool)
	info.Reason, _ = ev.Data["reason"].(string)
	return info, true
}

// DeviceDeletedOf decodes a DEVICE_DELETED event: the qdev id (empty for
// devices without one, such as a virtio device's backend) and QOM path.
func DeviceDeletedOf(ev Event) (device, path string, ok bool) {
	if ev.Event != "DEVICE_DELETED" {
		return "", "", false
	}
	device, _ = ev.Data["device"].(string)
	path, _ = ev.Data["path"].(string)
	return device, path, true
}

// GoQEMU returns m as a go-qemu qmp.Monitor, for go-qemu's own helpers
// (qmp/raw's generated commands, qemu.Domain). Connect is a no-op (m is
// connected), Disconnect closes m.
func (m *Monitor) GoQEMU() qmp.Monitor { return goQEMUMonitor{m} }

type goQEMUMonitor struct{ m *Monitor }

var _ qmp.Monitor = goQEMUMonitor{}

func (g goQEMUMonitor) Connect() error    { return nil }
func (g goQEMUMonitor) Disconnect() error { return g.m.Close() }

// Run takes a marshaled qmp.Command and returns QEMU's whole answer
// object, as go-qemu's monitors do.
func (g goQEMUMonitor) Run(command []byte) ([]byte, error) {
	var c struct {
		Execute string          `json:"execute"`
		Args    json.RawMessage `json:"arguments"`
	}
	if err := json.Unmarshal(command, &c); err != nil {
		return nil, fmt.Errorf("qmp: not a command: %w", err)
	}
	var args any
	if len(c.Args) > 0 {
		args = c.Args
	}
	ret, err := g.m.run(context.Background(), c.Execute, args)
	if err != nil {
		return nil, err
	}
	if len(ret) == 0 {
		ret = json.RawMessage("{}")
	}
	return json.Marshal(struct {
		Return json.RawMessage `json:"return"`
	}{ret})
}

// Events streams events until ctx ends or the connection does.
func (g goQEMUMonitor) Events(ctx context.Context) (<-chan qmp.Event, error) {
	in, cancel := g.m.Subscribe()
	out := make(chan qmp.Event)
	go func() {
		defer close(out)
		defer cancel()
		for {
			select {
			case ev, ok := <-in:
				if !ok {
					return
				}
				select {
				case out <- ev:
				case <-ctx.Done():
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

// Typed wrappers. Each is a thin layer over Run with QEMU's argument
// names; see QEMU's QMP reference for their semantics.

// StatusInfo is query-status's answer.
type StatusInfo struct {
	Running    bool   `json:"running"`
	Singlestep bool   `json:"singlestep"`
	Status     string `json:"status"` // running, paused, shutdown, guest-panicked, …
}

// QueryStatus runs query-status.
func (m *Monitor) QueryStatus(ctx context.Context) (StatusInfo, error) {
	var s StatusInfo
	err := m.Run(ctx, "query-status", nil, &s)
	return s, err
}

// SystemPowerdown presses the ACPI power button.
func (m *Monitor) SystemPowerdown(ctx context.Context) error {
	return m.Run(ctx, "system_powerdown", nil, nil)
}

// SystemReset resets the machine.
func (m *Monitor) SystemReset(ctx context.Context) error {
	return m.Run(ctx, "system_reset", nil, nil)
}

// Quit ends QEMU. QEMU may close the connection before or after
// answering, so a disconnect counts as success.
func (m *Monitor) Quit(ctx context.Context) error {
	err := m.Run(ctx, "quit", nil, nil)
	if errors.Is(err, ErrDisconnected) {
		return nil
	}
	return err
}

// Stop pauses the vCPUs (QMP "stop").
func (m *Monitor) Stop(ctx context.Context) error { return m.Run(ctx, "stop", nil, nil) }

// Cont resumes paused vCPUs.
func (m *Monitor) Cont(ctx context.Context) error { return m.Run(ctx, "cont", nil, nil) }

// BlockdevAdd adds a block node; opts is a BlockdevOptions object.
func (m *Monitor) BlockdevAdd(ctx context.Context, opts any) error {
	return m.Run(ctx, "blockdev-add", opts, nil)
}

// BlockdevDel removes a block node no device uses any more.
func (m *Monitor) BlockdevDel(ctx context.Context, nodeName string) error {
	return m.Run(ctx, "blockdev-del", map[string]string{"node-name": nodeName}, nil)
}

// DeviceAdd plugs a device; props holds "driver", "id", "bus" and the
// device's properties.
func (m *Monitor) DeviceAdd(ctx context.Context, props map[string]any) error {
	return m.Run(ctx, "device_add", props, nil)
}

// DeviceDel asks the guest to release a device. It returns at once; the
// device is gone when the DEVICE_DELETED event for its id arrives.
func (m *Monitor) DeviceDel(ctx context.Context, id string) error {
	return m.Run(ctx, "device_del", map[string]string{"id": id}, nil)
}

// NetdevAdd adds a network backend; opts holds "type", "id" and the
// backend's options.
func (m *Monitor) NetdevAdd(ctx context.Context, opts map[string]any) error {
	return m.Run(ctx, "netdev_add", opts, nil)
}

// NetdevDel removes a network backend.
func (m *Monitor) NetdevDel(ctx context.Context, id string) error {
	return m.Run(ctx, "netdev_del", map[string]string{"id": id}, nil)
}

// ObjectAdd creates a QOM object; props holds "qom-type", "id" and its
// properties.
func (m *Monitor) ObjectAdd(ctx context.Context, props map[string]any) error {
	return m.Run(ctx, "object-add", props, nil)
}

// ObjectDel deletes a QOM object.
func (m *Monitor) ObjectDel(ctx context.Context, id string) error {
	return m.Run(ctx, "object-del", map[string]string{"id": id}, nil)
}

// QOMSet sets a QOM property.
func (m *Monitor) QOMSet(ctx context.Context, path, property string, value any) error {
	return m.Run(ctx, "qom-set", map[string]any{"path": path, "property": property, "value": value}, nil)
}

// QOMGet reads a QOM property into resp.
func (m *Monitor) QOMGet(ctx context.Context, path, property string, resp any) error {
	return m.Run(ctx, "qom-get", map[string]any{"path": path, "property": property}, resp)
}

// IOThrottle is block_set_io_throttle's argument: BlockBackend-level
// limits of the device with qdev id ID.
type IOThrottle struct {
	ID     string `json:"id"`
	BPS    int64  `json:"bps"`
	BPSRd  int64  `json:"bps_rd"`
	BPSWr  int64  `json:"bps_wr"`
	IOPS   int64  `json:"iops"`
	IOPSRd int64  `json:"iops_rd"`
	IOPSWr int64  `json:"iops_wr"`
}

// BlockSetIOThrottle sets BlockBackend-level limits on a device. The
// driver itself throttles through throttle groups (see throttleLimits),
// which also cover disks attached at boot; this is for backends without
// a group.
func (m *Monitor) BlockSetIOThrottle(ctx context.Context, t IOThrottle) error {
	return m.Run(ctx, "block_set_io_throttle", t, nil)
}

// BlockInfo is one entry of query-block's answer (the fields labcloud
// reads).
type BlockInfo struct {
	Device   string `json:"device"`
	QDev     string `json:"qdev"`
	Inserted *struct {
		NodeName string `json:"node-name"`
		File     string `json:"file"`
		RO       bool   `json:"ro"`
		Drv      string `json:"drv"`
		IOPS     int64  `json:"iops"`
		BPS      int64  `json:"bps"`
	} `json:"inserted,omitempty"`
}

// QueryBlock runs query-block.
func (m *Monitor) QueryBlock(ctx context.Context) ([]BlockInfo, error) {
	var b []BlockInfo
	err := m.Run(ctx, "query-block", nil, &b)
	return b, err
}

// PCIBus and PCIDevice are query-pci's answer, reduced to what finding
// free hot-plug ports needs.
type PCIBus struct {
	Bus     int         `json:"bus"`
	Devices []PCIDevice `json:"devices"`
}

// PCIDevice is one function on a PCI bus; bridges (root ports) list the
// devices behind them.
type PCIDevice struct {
	Bus      int    `json:"bus"`
	Slot     int    `json:"slot"`
	Function int    `json:"function"`
	QDevID   string `json:"qdev_id"`
	Bridge   *struct {
		Devices []PCIDevice `json:"devices"`
	} `json:"pci_bridge,omitempty"`
}

// QueryPCI runs query-pci.
func (m *Monitor) QueryPCI(ctx context.Context) ([]PCIBus, error) {
	var b []PCIBus
	err := m.Run(ctx, "query-pci", nil, &b)
	return b, err
}

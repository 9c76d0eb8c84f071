package qemu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/digitalocean/go-qemu/qmp"
)

// fakeQMP is a QMP server on a unix socket that speaks the protocol the
// way QEMU does: greeting, qmp_capabilities, one JSON object per line,
// asynchronous events interleaved with answers.
type fakeQMP struct {
	t    *testing.T
	path string
	ln   net.Listener

	mu       sync.Mutex
	conn     net.Conn
	received []map[string]any
	// handle answers a command: return the "return" value, or an error
	// for an {"error": …} answer. A nil handle answers {} to everything.
	handle func(cmd string, args map[string]any) (any, error)
	// silent commands get no answer at all (a hung QEMU).
	silent map[string]bool
	// greet false: accept but never send the greeting.
	greet bool
	// eventBeforeHandshake sends an event before the qmp_capabilities
	// answer, which QEMU may do.
	eventBeforeHandshake bool
}

func newFakeQMP(t *testing.T) *fakeQMP {
	t.Helper()
	path := filepath.Join(t.TempDir(), "qmp.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeQMP{t: t, path: path, ln: ln, silent: map[string]bool{}, greet: true}
	t.Cleanup(func() {
		ln.Close()
		f.mu.Lock()
		if f.conn != nil {
			f.conn.Close()
		}
		f.mu.Unlock()
	})
	go f.serve()
	return f
}

func (f *fakeQMP) serve() {
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.mu.Lock()
		f.conn = c
		greet := f.greet
		f.mu.Unlock()
		if greet {
			f.send(map[string]any{"QMP": map[string]any{
				"version":      map[string]any{"qemu": map[string]int{"major": 7, "minor": 2, "micro": 22}, "package": "fake"},
				"capabilities": []string{"oob"},
			}})
		}
		go f.read(c)
	}
}

func (f *fakeQMP) send(v any) {
	b, _ := json.Marshal(v)
	f.mu.Lock()
	c := f.conn
	f.mu.Unlock()
	if c != nil {
		c.Write(append(b, '\r', '\n'))
	}
}

// read parses commands as a stream of JSON objects, like QEMU: clients
// (go-qemu among them) need not end them with a newline.
func (f *fakeQMP) read(c net.Conn) {
	dec := json.NewDecoder(c)
	for {
		var msg struct {
			Execute string         `json:"execute"`
			Args    map[string]any `json:"arguments"`
			ID      any            `json:"id"`
		}
		if err := dec.Decode(&msg); err != nil {
			return
		}
		f.mu.Lock()
		if msg.Execute != "qmp_capabilities" {
			f.received = append(f.received, map[string]any{"execute": msg.Execute, "arguments": msg.Args, "id": msg.ID})
		}
		handle, silent, early := f.handle, f.silent[msg.Execute], f.eventBeforeHandshake
		f.mu.Unlock()
		if silent {
			continue
		}
		if msg.Execute == "qmp_capabilities" && early {
			f.event("RTC_CHANGE", map[string]any{"offset": 1})
		}
		var ret any = map[string]any{}
		var err error
		if handle != nil && msg.Execute != "qmp_capabilities" {
			ret, err = handle(msg.Execute, msg.Args)
		}
		if err != nil {
			class := "GenericError"
			var ce *CommandError
			if errors.As(err, &ce) {
				class = ce.Class
			}
			f.send(map[string]any{"error": map[string]string{"class": class, "desc": err.Error()}, "id": msg.ID})
			continue
		}
		f.send(map[string]any{"return": ret, "id": msg.ID})
	}
}

// event sends an asynchronous event.
func (f *fakeQMP) event(name string, data map[string]any) {
	f.send(map[string]any{"event": name, "data": data, "timestamp": map[string]int64{"seconds": 1, "microseconds": 2}})
}

// hangUp closes the client connection, as an exiting QEMU does.
func (f *fakeQMP) hangUp() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.conn != nil {
		f.conn.Close()
	}
}

func (f *fakeQMP) setHandle(h func(cmd string, args map[string]any) (any, error)) {
	f.mu.Lock()
	f.handle = h
	f.mu.Unlock()
}

func (f *fakeQMP) setSilent(cmd string, silent bool) {
	f.mu.Lock()
	f.silent[cmd] = silent
	f.mu.Unlock()
}

func (f *fakeQMP) commands() []map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]map[string]any(nil), f.received...)
}

func dialFake(t *testing.T, f *fakeQMP) *Monitor {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m, err := Dial(ctx, f.path)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func TestQMPRunDecodesAnswer(t *testing.T) {
	f := newFakeQMP(t)
	f.setHandle(func(cmd string, args map[string]any) (any, error) {
		return map[string]any{"running": true, "singlestep": false, "status": "running"}, nil
	})
	m := dialFake(t, f)
	st, err := m.QueryStatus(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st != (StatusInfo{Running: true, Status: "running"}) {
		t.Fatalf("QueryStatus = %+v", st)
	}
}

func TestQMPCommandError(t *testing.T) {
	f := newFakeQMP(t)
	f.setHandle(func(cmd string, args map[string]any) (any, error) {
		return nil, &CommandError{Class: "DeviceNotFound", Message: fmt.Sprintf("Device '%s' not found", args["id"])}
	})
	m := dialFake(t, f)
	err := m.DeviceDel(context.Background(), "blk-vol-1")
	var ce *CommandError
	if !errors.As(err, &ce) || ce.Command != "device_del" || ce.Class != "DeviceNotFound" || !strings.Contains(ce.Message, "Device 'blk-vol-1' not found") {
		t.Fatalf("DeviceDel = %v, want a CommandError carrying QEMU's message", err)
	}
	if errors.Is(err, ErrDisconnected) || errors.Is(err, ErrTimeout) {
		t.Fatalf("a QEMU error answer must not look like a disconnect or timeout: %v", err)
	}
	if !isNotFound(err) {
		t.Fatalf("isNotFound(%v) = false", err)
	}
}

// TestQMPTypedWrappers checks what each wrapper puts on the wire.
func TestQMPTypedWrappers(t *testing.T) {
	f := newFakeQMP(t)
	m := dialFake(t, f)
	ctx := context.Background()
	tests := []struct {
		name    string
		call    func() error
		execute string
		args    string // JSON of "arguments", "null" for none
	}{
		{"system_powerdown", func() error { return m.SystemPowerdown(ctx) }, "system_powerdown", `null`},
		{"system_reset", func() error { return m.SystemReset(ctx) }, "system_reset", `null`},
		{"stop", func() error { return m.Stop(ctx) }, "stop", `null`},
		{"cont", func() error { return m.Cont(ctx) }, "cont", `null`},
		{"blockdev-add", func() error {
			return m.BlockdevAdd(ctx, fileNodeOpts{Driver: "file", NodeName: "file-vol-1", Filename: "/v.qcow2", Discard: "unmap"})
		}, "blockdev-add", `{"discard":"unmap","driver":"file","filename":"/v.qcow2","node-name":"file-vol-1","read-only":false}`},
		{"blockdev-del", func() error { return m.BlockdevDel(ctx, "fmt-vol-1") }, "blockdev-del", `{"node-name":"fmt-vol-1"}`},
		{"device_add", func() error {
			return m.DeviceAdd(ctx, map[string]any{"driver": "virtio-blk-pci", "id": "blk-vol-1", "bus": "rp3", "bootindex": 1})
		}, "device_add", `{"bootindex":1,"bus":"rp3","driver":"virtio-blk-pci","id":"blk-vol-1"}`},
		{"device_del", func() error { return m.DeviceDel(ctx, "net-eni-1") }, "device_del", `{"id":"net-eni-1"}`},
		{"netdev_add", func() error {
			return m.NetdevAdd(ctx, map[string]any{"type": "tap", "id": "nd-eni-1", "ifname": "tap1"})
		}, "netdev_add", `{"id":"nd-eni-1","ifname":"tap1","type":"tap"}`},
		{"netdev_del", func() error { return m.NetdevDel(ctx, "nd-eni-1") }, "netdev_del", `{"id":"nd-eni-1"}`},
		{"object-add", func() error {
			return m.ObjectAdd(ctx, map[string]any{"qom-type": "throttle-group", "id": "tg-vol-1"})
		}, "object-add", `{"id":"tg-vol-1","qom-type":"throttle-group"}`},
		{"object-del", func() error { return m.ObjectDel(ctx, "tg-vol-1") }, "object-del", `{"id":"tg-vol-1"}`},
		{"qom-set", func() error {
			return m.QOMSet(ctx, "/objects/tg-vol-1", "limits", throttleLimits{IOPSTotal: 5})
		}, "qom-set", `{"path":"/objects/tg-vol-1","property":"limits","value":{"bps-read":0,"bps-total":0,"bps-write":0,"iops-read":0,"iops-total":5,"iops-write":0}}`},
		{"block_set_io_throttle", func() error {
			return m.BlockSetIOThrottle(ctx, IOThrottle{ID: "blk-vol-1", IOPS: 100})
		}, "block_set_io_throttle", `{"bps":0,"bps_rd":0,"bps_wr":0,"id":"blk-vol-1","iops":100,"iops_rd":0,"iops_wr":0}`},
		{"query-block", func() error { _, err := m.QueryBlock(ctx); return err }, "query-block", `null`},
		{"query-pci", func() error { _, err := m.QueryPCI(ctx); return err }, "query-pci", `null`},
	}
	f.setHandle(func(cmd string, args map[string]any) (any, error) {
		switch cmd {
		case "query-block", "query-pci":
			return []any{}, nil
		}
		return map[string]any{}, nil
	})
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); err != nil {
				t.Fatal(err)
			}
			got := f.commands()[i]
			args, _ := json.Marshal(got["arguments"])
			if got["execute"] != tc.execute || string(args) != tc.args {
				t.Fatalf("sent execute=%v arguments=%s, want %s %s", got["execute"], args, tc.execute, tc.args)
			}
		})
	}
}

func TestQMPQuitToleratesHangUp(t *testing.T) {
	f := newFakeQMP(t)
	f.setSilent("quit", true)
	m := dialFake(t, f)
	done := make(chan error, 1)
	go func() { done <- m.Quit(context.Background()) }()
	waitUntil(t, "quit reached the server", func() bool { return len(f.commands()) == 1 })
	f.hangUp() // QEMU exits before answering
	if err := <-done; err != nil {
		t.Fatalf("Quit = %v, want nil when QEMU hangs up", err)
	}
}

func TestQMPTimeout(t *testing.T) {
	f := newFakeQMP(t)
	f.setSilent("query-status", true)
	m := dialFake(t, f)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := m.QueryStatus(ctx)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("QueryStatus on a silent server = %v, want ErrTimeout", err)
	}
	// QEMU answers late; then the next command must get its own answer,
	// not the late one.
	f.setSilent("query-status", false)
	f.send(map[string]any{"return": map[string]any{"status": "late"}, "id": f.commands()[0]["id"]})
	f.setHandle(func(cmd string, args map[string]any) (any, error) {
		return map[string]any{"status": "running", "running": true}, nil
	})
	st, err := m.QueryStatus(context.Background())
	if err != nil || st.Status != "running" {
		t.Fatalf("QueryStatus after a timeout = %+v, %v; want the second answer, not the late first one", st, err)
	}
}

// TestQMPEventBeforeHandshakeAnswer covers go-qemu#210: an event between
// qmp_capabilities and its answer must not be taken for the answer.
func TestQMPEventBeforeHandshakeAnswer(t *testing.T) {
	f := newFakeQMP(t)
	f.mu.Lock()
	f.eventBeforeHandshake = true
	f.mu.Unlock()
	f.setHandle(func(cmd string, args map[string]any) (any, error) {
		return map[string]any{"status": "paused"}, nil
	})
	m := dialFake(t, f)
	if st, err := m.QueryStatus(context.Background()); err != nil || st.Status != "paused" {
		t.Fatalf("QueryStatus = %+v, %v; want paused", st, err)
	}
}

// TestQMPAnswersSurviveEventFlood covers go-qemu#226: answers must stay
// intact while events keep arriving (run with -race).
func TestQMPAnswersSurviveEventFlood(t *testing.T) {
	f := newFakeQMP(t)
	big := strings.Repeat("x", 3000)
	f.setHandle(func(cmd string, args map[string]any) (any, error) {
		return map[string]any{"status": big}, nil
	})
	m := dialFake(t, f)
	stop := make(chan struct{})
	flooded := make(chan struct{})
	go func() {
		defer close(flooded)
		for {
			select {
			case <-stop:
				return
			default:
				f.event("NIC_RX_FILTER_CHANGED", map[string]any{"name": "net-eni-1", "path": strings.Repeat("p", 500)})
			}
		}
	}()
	for i := 0; i < 40; i++ {
		st, err := m.QueryStatus(context.Background())
		if err != nil || st.Status != big {
			close(stop)
			t.Fatalf("answer %d: %v, status of %d bytes; want %d intact bytes", i, err, len(st.Status), len(big))
		}
	}
	close(stop)
	<-flooded
}

// TestQMPGoQEMUMonitor checks the go-qemu qmp.Monitor face of Monitor.
func TestQMPGoQEMUMonitor(t *testing.T) {
	f := newFakeQMP(t)
	f.setHandle(func(cmd string, args map[string]any) (any, error) {
		return map[string]any{"echo": args["x"]}, nil
	})
	m := dialFake(t, f)
	g := m.GoQEMU()
	if err := g.Connect(); err != nil {
		t.Fatal(err)
	}
	cmd, _ := json.Marshal(qmp.Command{Execute: "test-cmd", Args: map[string]int{"x": 7}})
	out, err := g.Run(cmd)
	if err != nil || string(out) != `{"return":{"echo":7}}` {
		t.Fatalf("Run = %s, %v", out, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	events, err := g.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f.event("RESET", map[string]any{"guest": true})
	if ev := <-events; ev.Event != "RESET" {
		t.Fatalf("event %+v, want RESET", ev)
	}
	cancel()
	for range events {
	}
	if err := g.Disconnect(); err != nil {
		t.Fatal(err)
	}
	<-m.Done()
}

func TestQMPCanceled(t *testing.T) {
	f := newFakeQMP(t)
	f.setSilent("query-status", true)
	m := dialFake(t, f)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := m.QueryStatus(ctx); !errors.Is(err, context.Canceled) || errors.Is(err, ErrTimeout) {
		t.Fatalf("QueryStatus with a canceled context = %v, want context.Canceled", err)
	}
}

func TestQMPDisconnect(t *testing.T) {
	f := newFakeQMP(t)
	f.setSilent("query-status", true)
	m := dialFake(t, f)
	events, cancel := m.Subscribe()
	defer cancel()
	done := make(chan error, 1)
	go func() { _, err := m.QueryStatus(context.Background()); done <- err }()
	waitUntil(t, "query-status reached the server", func() bool { return len(f.commands()) == 1 })
	f.hangUp()
	if err := <-done; !errors.Is(err, ErrDisconnected) {
		t.Fatalf("command in flight at hang-up = %v, want ErrDisconnected", err)
	}
	select {
	case <-m.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done not closed after hang-up")
	}
	if _, err := WaitEvent(context.Background(), events, func(Event) bool { return true }); !errors.Is(err, ErrDisconnected) {
		t.Fatalf("WaitEvent after hang-up = %v, want ErrDisconnected", err)
	}
	if err := m.SystemReset(context.Background()); !errors.Is(err, ErrDisconnected) {
		t.Fatalf("command after hang-up = %v, want ErrDisconnected", err)
	}
	late, lateCancel := m.Subscribe()
	defer lateCancel()
	if _, ok := <-late; ok {
		t.Fatal("a subscription after the hang-up must be closed")
	}
}

func TestQMPEventsFanOut(t *testing.T) {
	f := newFakeQMP(t)
	m := dialFake(t, f)
	a, cancelA := m.Subscribe()
	defer cancelA()
	b, cancelB := m.Subscribe()
	f.event("DEVICE_DELETED", map[string]any{"path": "/machine/peripheral/blk-vol-1/virtio-backend"})
	f.event("DEVICE_DELETED", map[string]any{"device": "blk-vol-1", "path": "/machine/peripheral/blk-vol-1"})
	f.event("SHUTDOWN", map[string]any{"guest": true, "reason": "guest-shutdown"})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ev, err := WaitEvent(ctx, a, func(ev Event) bool { return ev.Event == "DEVICE_DELETED" && ev.Data["device"] == "blk-vol-1" })
	if err != nil || ev.Data["path"] != "/machine/peripheral/blk-vol-1" {
		t.Fatalf("WaitEvent(DEVICE_DELETED blk-vol-1) = %+v, %v", ev, err)
	}
	ev, err = WaitEvent(ctx, b, func(ev Event) bool { return ev.Event == "SHUTDOWN" })
	if err != nil || ev.Data["guest"] != true || ev.Data["reason"] != "guest-shutdown" {
		t.Fatalf("second subscriber: %+v, %v", ev, err)
	}
	cancelB()
	if _, ok := <-b; ok {
		// drain anything buffered before cancel; the channel must end closed
		for range b {
		}
	}
	// A command still works while events flow, and with no event waiting.
	if err := m.SystemReset(ctx); err != nil {
		t.Fatal(err)
	}
	short, cancelShort := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancelShort()
	if _, err := WaitEvent(short, a, func(ev Event) bool { return ev.Event == "RESET" }); !errors.Is(err, ErrTimeout) {
		t.Fatalf("WaitEvent for an event that never comes = %v, want ErrTimeout", err)
	}
}

func TestQMPDialWithoutGreeting(t *testing.T) {
	f := newFakeQMP(t)
	f.mu.Lock()
	f.greet = false // like a QEMU whose single QMP client slot is taken
	f.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := Dial(ctx, f.path); !errors.Is(err, ErrTimeout) {
		t.Fatalf("Dial without a greeting = %v, want ErrTimeout", err)
	}
}

func TestQMPDialNoSocket(t *testing.T) {
	_, err := Dial(context.Background(), filepath.Join(t.TempDir(), "none.sock"))
	if !errors.Is(err, ErrDisconnected) {
		t.Fatalf("Dial of a missing socket = %v, want ErrDisconnected", err)
	}
}

func TestFreePort(t *testing.T) {
	f := newFakeQMP(t)
	f.setHandle(func(cmd string, args map[string]any) (any, error) {
		var v any
		json.Unmarshal([]byte(`[{"bus":0,"devices":[
			{"bus":0,"slot":1,"function":0,"qdev_id":"rng"},
			{"bus":0,"slot":2,"function":0,"qdev_id":"rp0","pci_bridge":{"devices":[{"bus":1,"slot":0,"function":0,"qdev_id":"blk-vol-1"}]}},
			{"bus":0,"slot":2,"function":1,"qdev_id":"rp1","pci_bridge":{"devices":[]}},
			{"bus":0,"slot":2,"function":2,"qdev_id":"rp10","pci_bridge":{"devices":[]}},
			{"bus":0,"slot":2,"function":3,"qdev_id":"rp2","pci_bridge":{"devices":[]}}]}]`), &v)
		return v, nil
	})
	m := dialFake(t, f)
	port, err := freePort(context.Background(), m)
	if err != nil || port != "rp1" {
		t.Fatalf("freePort = %q, %v; want rp1 (lowest empty port)", port, err)
	}
	f.setHandle(func(cmd string, args map[string]any) (any, error) {
		return []any{map[string]any{"bus": 0, "devices": []any{}}}, nil
	})
	if _, err := freePort(context.Background(), m); err == nil {
		t.Fatal("freePort with no empty port: want LimitExceeded")
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

package netfab

import (
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/labcloud/labcloud/netfab/nft"
)

// APIPort is where programs in an instance reach labcloud's own API (EC2,
// IAM, STS): http://169.254.169.254:7420, in every VPC, with or without an
// internet gateway. On AWS the API endpoints are on the internet; a lab
// has none, so each VPC router proxies this port to the daemon's endpoint,
// byte for byte (SigV4 signatures cover the Host header, which passes
// unchanged). Instances use it with `--endpoint-url`, and with the
// credentials of their instance profile from the metadata service.
const APIPort = nft.APIPort

// apiProxy forwards the VPC's API port to the daemon's listener.
type apiProxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

// startAPIProxy listens on 169.254.169.254:APIPort inside the namespace
// and forwards each connection to target (host:port in the host
// namespace).
func startAPIProxy(ns, target string) (*apiProxy, error) {
	p := &apiProxy{target: target, conns: map[net.Conn]struct{}{}}
	err := inNamespace(ns, func() error {
		ln, err := net.Listen("tcp4", net.JoinHostPort(imdsAddr, strconv.Itoa(APIPort)))
		p.ln = ln
		return err
	})
	if err != nil {
		return nil, err
	}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

func (p *apiProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go p.forward(c)
	}
}

// track remembers a connection so close can cut it; false once closed.
func (p *apiProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *apiProxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

func (p *apiProxy) forward(in net.Conn) {
	defer p.wg.Done()
	defer in.Close()
	// This goroutine is not locked to a namespaced thread: the dial
	// happens in the daemon's (host) namespace, where the API listens.
	out, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		return
	}
	defer out.Close()
	if !p.track(in) || !p.track(out) {
		return
	}
	defer p.untrack(in)
	defer p.untrack(out)
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		done <- struct{}{}
	}
	go pipe(out, in)
	go pipe(in, out)
	<-done
	<-done
}

func (p *apiProxy) close() {
	_ = p.ln.Close()
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// Package clock is labcloud's logical clock for expirations (temporary
// credentials, later spot and reservation terms). In production it is the
// wall clock. With `labcloudd serve --test-clock` it can be moved forward,
// so a test can see 15-minute credentials expire without waiting 15
// minutes; SigV4's clock-skew check keeps using the wall clock, because the
// clients sign with theirs.
package clock

import (
	"sync"
	"time"
)

// Clock is the wall clock plus an offset that only grows.
type Clock struct {
	mu     sync.Mutex
	offset time.Duration
}

// Now returns the logical time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

// Advance moves the clock forward by d (negative d is ignored: expired
// credentials must not come back to life).
func (c *Clock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	if d > 0 {
		c.offset += d
	}
	c.mu.Unlock()
	return c.Now()
}

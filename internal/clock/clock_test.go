package clock

import (
	"testing"
	"time"
)

func TestAdvance(t *testing.T) {
	var c Clock
	before := c.Now()
	got := c.Advance(15 * time.Minute)
	if d := got.Sub(before); d < 15*time.Minute || d > 16*time.Minute {
		t.Fatalf("advanced by %v, want about 15m", d)
	}
	back := c.Advance(-time.Hour)
	if back.Before(got) {
		t.Fatalf("clock went backwards: %v < %v", back, got)
	}
}

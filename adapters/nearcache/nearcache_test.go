package nearcache_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestMain fails the package when a test leaves a goroutine behind.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	tenant    = "tenant-1"
	messageID = "wamid.HBgLMTU1NTEyMzQ1NjcVAgASGBQzQUVCNTM2"
	owner     = "owner-1"
	owner2    = "owner-2"
	claimTTL  = 5 * time.Minute
	doneTTL   = 24 * time.Hour
)

var errRedis = errors.New("redis: connection refused")

// clock is a settable time source for [nearcache.Config.Now] and
// [memory.WithClock]. It is safe for concurrent use.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

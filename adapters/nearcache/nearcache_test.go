package nearcache_test

import (
	"errors"
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

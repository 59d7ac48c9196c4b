package domain_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang/mock/gomock"

	"github.com/wa2genesys/connectorcache/domain"
	"github.com/wa2genesys/connectorcache/internal/mocks"
	"github.com/wa2genesys/connectorcache/ports"
)

const (
	testTenant  = "tenant-1"
	testMessage = "wamid.HBgLMTU1NTEyMzQ1NjcVAgASGBQzQUE0RjM2QzQ0NTg5MkY3RjRBNQA="
)

func newDedupeStore(t *testing.T) *mocks.MockDedupeStore {
	return mocks.NewMockDedupeStore(gomock.NewController(t))
}

// newClaim makes a ClaimNew claim over store, recording the owner the
// deduplicator chose in *owner.
func newClaim(t *testing.T, store *mocks.MockDedupeStore, cfg domain.DeduplicatorConfig, owner *string) (*domain.Deduplicator, *domain.Claim) {
	t.Helper()
	store.EXPECT().Claim(gomock.Any(), testTenant, testMessage, gomock.Any(), gomock.Any()).
		DoAndReturn(func(_ context.Context, _, _, o string, _ time.Duration) (ports.ClaimState, error) {
			*owner = o
			return ports.ClaimAcquired, nil
		})
	d := domain.NewDeduplicator(store, cfg)
	claim, err := d.Claim(context.Background(), testTenant, testMessage)
	if err != nil {
		t.Fatalf("Claim() error = %v", err)
	}
	if claim.Status() != domain.ClaimNew {
		t.Fatalf("Claim() status = %v, want %v", claim.Status(), domain.ClaimNew)
	}
	return d, claim
}

func TestClaimStatusFromStore(t *testing.T) {
	tests := []struct {
		name      string
		give      ports.ClaimState
		want      domain.ClaimStatus
		wantStats domain.DedupeStats
	}{
		{name: "acquired", give: ports.ClaimAcquired, want: domain.ClaimNew, wantStats: domain.DedupeStats{New: 1}},
		{name: "held", give: ports.ClaimHeld, want: domain.ClaimInFlight, wantStats: domain.DedupeStats{InFlight: 1}},
		{name: "committed", give: ports.ClaimCommitted, want: domain.ClaimDone, wantStats: domain.DedupeStats{Done: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := newDedupeStore(t)
			store.EXPECT().Claim(gomock.Any(), testTenant, testMessage, gomock.Any(), gomock.Any()).Return(tt.give, nil)
			d := domain.NewDeduplicator(store, domain.DeduplicatorConfig{})

			claim, err := d.Claim(context.Background(), testTenant, testMessage)
			if err != nil {
				t.Fatalf("Claim() error = %v", err)
			}
			if got := claim.Status(); got != tt.want {
				t.Errorf("Status() = %v, want %v", got, tt.want)
			}
			if got := d.Stats(); got != tt.wantStats {
				t.Errorf("Stats() = %+v, want %+v", got, tt.wantStats)
			}
		})
	}
}

func TestClaimUnknownStoreState(t *testing.T) {
	tests := []struct {
		name string
		give ports.ClaimState
	}{
		{name: "zero", give: 0},
		{name: "past the last state", give: ports.ClaimCommitted + 1},
		{name: "negative", give: -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := newDedupeStore(t)
			store.EXPECT().Claim(gomock.Any(), testTenant, testMessage, gomock.Any(), gomock.Any()).Return(tt.give, nil)
			d := domain.NewDeduplicator(store, domain.DeduplicatorConfig{})

			claim, err := d.Claim(context.Background(), testTenant, testMessage)
			if err == nil {
				t.Fatalf("Claim() = %v, nil error; want an error for store state %d", claim.Status(), tt.give)
			}
			if claim != nil {
				t.Errorf("Claim() claim = %+v, want nil", claim)
			}
			if got := d.Stats(); got != (domain.DedupeStats{}) {
				t.Errorf("Stats() = %+v, want zero", got)
			}
		})
	}
}

func TestClaimStoreError(t *testing.T) {
	errStore := errors.New("store: connection reset")
	store := newDedupeStore(t)
	store.EXPECT().Claim(gomock.Any(), testTenant, testMessage, gomock.Any(), gomock.Any()).
		Return(ports.ClaimState(0), errStore)
	d := domain.NewDeduplicator(store, domain.DeduplicatorConfig{})

	claim, err := d.Claim(context.Background(), testTenant, testMessage)
	if !errors.Is(err, errStore) {
		t.Fatalf("Claim() error = %v, want it to wrap %v", err, errStore)
	}
	if err.Error() == errStore.Error() {
		t.Errorf("Claim() error = %q, want context around the store's error", err)
	}
	if claim != nil {
		t.Errorf("Claim() claim = %+v, want nil", claim)
	}
	if got := d.Stats(); got != (domain.DedupeStats{}) {
		t.Errorf("Stats() = %+v, want zero", got)
	}
}

// TestClaimErrorQuotesTheMessageID: a message id may hold format
// characters that reorder the text around them (U+202E) and still be
// valid; an error quotes it, so that it reads as it is wherever it is
// logged.
func TestClaimErrorQuotesTheMessageID(t *testing.T) {
	const id = "wamid.\u202eABC"
	store := newDedupeStore(t)
	store.EXPECT().Claim(gomock.Any(), testTenant, id, gomock.Any(), gomock.Any()).
		Return(ports.ClaimState(0), errors.New("store: connection reset"))
	d := domain.NewDeduplicator(store, domain.DeduplicatorConfig{})

	_, err := d.Claim(context.Background(), testTenant, id)
	if err == nil || strings.ContainsRune(err.Error(), '\u202e') || !strings.Contains(err.Error(), `"wamid.\u202eABC"`) {
		t.Errorf("Claim() error = %v, want the message id quoted, its U+202E escaped", err)
	}
}

func TestClaimTTL(t *testing.T) {
	tests := []struct {
		name string
		give time.Duration
		want time.Duration
	}{
		{name: "default", give: 0, want: domain.DefaultClaimTTL},
		{name: "negative means default", give: -time.Second, want: domain.DefaultClaimTTL},
		{name: "configured", give: 90 * time.Second, want: 90 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := newDedupeStore(t)
			store.EXPECT().Claim(gomock.Any(), testTenant, testMessage, gomock.Any(), tt.want).Return(ports.ClaimAcquired, nil)
			d := domain.NewDeduplicator(store, domain.DeduplicatorConfig{ClaimTTL: tt.give})

			if _, err := d.Claim(context.Background(), testTenant, testMessage); err != nil {
				t.Fatalf("Claim() error = %v", err)
			}
		})
	}
	if domain.DefaultClaimTTL != 5*time.Minute {
		t.Errorf("DefaultClaimTTL = %v, want 5m", domain.DefaultClaimTTL)
	}
}

func TestClaimOwnersAreUnique(t *testing.T) {
	const claims = 200
	store := newDedupeStore(t)
	var (
		mu     sync.Mutex
		owners = map[string]int{}
	)
	store.EXPECT().Claim(gomock.Any(), testTenant, testMessage, gomock.Any(), gomock.Any()).
		DoAndReturn(func(_ context.Context, _, _, owner string, _ time.Duration) (ports.ClaimState, error) {
			mu.Lock()
			defer mu.Unlock()
			owners[owner]++
			return ports.ClaimHeld, nil
		}).Times(claims)
	d := domain.NewDeduplicator(store, domain.DeduplicatorConfig{})

	var wg sync.WaitGroup
	for range claims {
		wg.Go(func() {
			if _, err := d.Claim(context.Background(), testTenant, testMessage); err != nil {
				t.Errorf("Claim() error = %v", err)
			}
		})
	}
	wg.Wait()

	if len(owners) != claims {
		t.Errorf("%d claims used %d distinct owners, want %d", claims, len(owners), claims)
	}
	for owner, n := range owners {
		if strings.TrimSpace(owner) == "" {
			t.Errorf("owner %q is blank", owner)
		}
		if n > 1 {
			t.Errorf("owner %q used by %d claims", owner, n)
		}
	}
	if got := d.Stats(); got != (domain.DedupeStats{InFlight: claims}) {
		t.Errorf("Stats() = %+v, want %d in flight", got, claims)
	}
}

func TestCommit(t *testing.T) {
	tests := []struct {
		name    string
		giveTTL time.Duration
		wantTTL time.Duration
	}{
		{name: "default TTL", giveTTL: 0, wantTTL: domain.DefaultDedupeTTL},
		{name: "negative TTL means default", giveTTL: -time.Hour, wantTTL: domain.DefaultDedupeTTL},
		{name: "configured TTL", giveTTL: 2 * time.Hour, wantTTL: 2 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := newDedupeStore(t)
			var owner string
			d, claim := newClaim(t, store, domain.DeduplicatorConfig{TTL: tt.giveTTL}, &owner)
			store.EXPECT().Commit(gomock.Any(), testTenant, testMessage, gomock.Any(), tt.wantTTL).
				DoAndReturn(func(_ context.Context, _, _, o string, _ time.Duration) (bool, error) {
					if o != owner {
						t.Errorf("Commit owner = %q, want the claim's owner %q", o, owner)
					}
					return true, nil
				})

			if err := claim.Commit(context.Background()); err != nil {
				t.Fatalf("Commit() error = %v", err)
			}
			want := domain.DedupeStats{New: 1, Committed: 1}
			if got := d.Stats(); got != want {
				t.Errorf("Stats() = %+v, want %+v", got, want)
			}
		})
	}
	if domain.DefaultDedupeTTL != 24*time.Hour {
		t.Errorf("DefaultDedupeTTL = %v, want 24h", domain.DefaultDedupeTTL)
	}
}

func TestRelease(t *testing.T) {
	store := newDedupeStore(t)
	var owner string
	d, claim := newClaim(t, store, domain.DeduplicatorConfig{}, &owner)
	store.EXPECT().Release(gomock.Any(), testTenant, testMessage, gomock.Any()).
		DoAndReturn(func(_ context.Context, _, _, o string) (bool, error) {
			if o != owner {
				t.Errorf("Release owner = %q, want the claim's owner %q", o, owner)
			}
			return true, nil
		})

	if err := claim.Release(context.Background()); err != nil {
		t.Fatalf("Release() error = %v", err)
	}
	want := domain.DedupeStats{New: 1, Released: 1}
	if got := d.Stats(); got != want {
		t.Errorf("Stats() = %+v, want %+v", got, want)
	}
}

// TestClaimSettlesOnce settles a claim twice in every order: the first call
// reaches the store once (gomock fails on a second call), the second call
// does nothing and returns nil.
func TestClaimSettlesOnce(t *testing.T) {
	commit := func(c *domain.Claim) error { return c.Commit(context.Background()) }
	release := func(c *domain.Claim) error { return c.Release(context.Background()) }
	tests := []struct {
		name          string
		giveFirst     func(*domain.Claim) error
		giveSecond    func(*domain.Claim) error
		wantCommits   int
		wantReleases  int
		wantStatsDone domain.DedupeStats
	}{
		{name: "commit, commit", giveFirst: commit, giveSecond: commit, wantCommits: 1, wantStatsDone: domain.DedupeStats{New: 1, Committed: 1}},
		{name: "release, release", giveFirst: release, giveSecond: release, wantReleases: 1, wantStatsDone: domain.DedupeStats{New: 1, Released: 1}},
		{name: "commit, release", giveFirst: commit, giveSecond: release, wantCommits: 1, wantStatsDone: domain.DedupeStats{New: 1, Committed: 1}},
		{name: "release, commit", giveFirst: release, giveSecond: commit, wantReleases: 1, wantStatsDone: domain.DedupeStats{New: 1, Released: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := newDedupeStore(t)
			var owner string
			d, claim := newClaim(t, store, domain.DeduplicatorConfig{}, &owner)
			store.EXPECT().Commit(gomock.Any(), testTenant, testMessage, gomock.Any(), gomock.Any()).Return(true, nil).Times(tt.wantCommits)
			store.EXPECT().Release(gomock.Any(), testTenant, testMessage, gomock.Any()).Return(true, nil).Times(tt.wantReleases)

			if err := tt.giveFirst(claim); err != nil {
				t.Fatalf("first call error = %v", err)
			}
			if err := tt.giveSecond(claim); err != nil {
				t.Errorf("second call error = %v, want nil", err)
			}
			if got := d.Stats(); got != tt.wantStatsDone {
				t.Errorf("Stats() = %+v, want %+v", got, tt.wantStatsDone)
			}
		})
	}
}

func TestSettleDuplicateClaimIsNoOp(t *testing.T) {
	tests := []struct {
		name string
		give ports.ClaimState
	}{
		{name: "in flight", give: ports.ClaimHeld},
		{name: "done", give: ports.ClaimCommitted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := newDedupeStore(t)
			store.EXPECT().Claim(gomock.Any(), testTenant, testMessage, gomock.Any(), gomock.Any()).Return(tt.give, nil)
			// No Commit or Release expectation: a duplicate must not touch
			// the original claim's key.
			d := domain.NewDeduplicator(store, domain.DeduplicatorConfig{})
			claim, err := d.Claim(context.Background(), testTenant, testMessage)
			if err != nil {
				t.Fatalf("Claim() error = %v", err)
			}

			if err := claim.Commit(context.Background()); err != nil {
				t.Errorf("Commit() error = %v, want nil", err)
			}
			if err := claim.Release(context.Background()); err != nil {
				t.Errorf("Release() error = %v, want nil", err)
			}
			if got := d.Stats(); got.Committed != 0 || got.Released != 0 {
				t.Errorf("Stats() = %+v, want nothing committed or released", got)
			}
		})
	}
}

func TestCommitClaimLost(t *testing.T) {
	store := newDedupeStore(t)
	var owner string
	_, claim := newClaim(t, store, domain.DeduplicatorConfig{}, &owner)
	store.EXPECT().Commit(gomock.Any(), testTenant, testMessage, gomock.Any(), gomock.Any()).Return(false, nil)

	checkClaimLost(t, claim.Commit(context.Background()))
	if err := claim.Commit(context.Background()); err != nil {
		t.Errorf("second Commit() error = %v, want nil", err)
	}
}

func TestReleaseClaimLost(t *testing.T) {
	store := newDedupeStore(t)
	var owner string
	_, claim := newClaim(t, store, domain.DeduplicatorConfig{}, &owner)
	store.EXPECT().Release(gomock.Any(), testTenant, testMessage, gomock.Any()).Return(false, nil)

	checkClaimLost(t, claim.Release(context.Background()))
	if err := claim.Release(context.Background()); err != nil {
		t.Errorf("second Release() error = %v, want nil", err)
	}
}

func checkClaimLost(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, domain.ErrClaimLost) {
		t.Fatalf("error = %v, want ErrClaimLost", err)
	}
	if !strings.Contains(err.Error(), testMessage) || !strings.Contains(err.Error(), testTenant) {
		t.Errorf("error = %q, want it to name the message and the tenant", err)
	}
}

func TestCommitStoreError(t *testing.T) {
	errStore := errors.New("store: i/o timeout")
	store := newDedupeStore(t)
	var owner string
	_, claim := newClaim(t, store, domain.DeduplicatorConfig{}, &owner)
	store.EXPECT().Commit(gomock.Any(), testTenant, testMessage, gomock.Any(), gomock.Any()).Return(false, errStore)

	checkWrapsStoreError(t, claim.Commit(context.Background()), errStore)
}

func TestReleaseStoreError(t *testing.T) {
	errStore := errors.New("store: i/o timeout")
	store := newDedupeStore(t)
	var owner string
	_, claim := newClaim(t, store, domain.DeduplicatorConfig{}, &owner)
	store.EXPECT().Release(gomock.Any(), testTenant, testMessage, gomock.Any()).Return(false, errStore)

	checkWrapsStoreError(t, claim.Release(context.Background()), errStore)
}

func checkWrapsStoreError(t *testing.T, err, errStore error) {
	t.Helper()
	if !errors.Is(err, errStore) {
		t.Fatalf("error = %v, want it to wrap %v", err, errStore)
	}
	if errors.Is(err, domain.ErrClaimLost) {
		t.Errorf("error = %v, want a store error, not ErrClaimLost", err)
	}
	if err.Error() == errStore.Error() {
		t.Errorf("error = %q, want context around the store's error", err)
	}
}

// TestConcurrentCommitAndRelease races Commit against Release on one claim,
// many times: exactly one of them reaches the store each time.
func TestConcurrentCommitAndRelease(t *testing.T) {
	for range 100 {
		store := newDedupeStore(t)
		var owner string
		d, claim := newClaim(t, store, domain.DeduplicatorConfig{}, &owner)
		var calls atomic.Int32
		store.EXPECT().Commit(gomock.Any(), testTenant, testMessage, gomock.Any(), gomock.Any()).
			DoAndReturn(func(context.Context, string, string, string, time.Duration) (bool, error) {
				calls.Add(1)
				return true, nil
			}).MaxTimes(1)
		store.EXPECT().Release(gomock.Any(), testTenant, testMessage, gomock.Any()).
			DoAndReturn(func(context.Context, string, string, string) (bool, error) {
				calls.Add(1)
				return true, nil
			}).MaxTimes(1)

		start := make(chan struct{})
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				<-start
				if err := claim.Commit(context.Background()); err != nil {
					t.Errorf("Commit() error = %v", err)
				}
			})
			wg.Go(func() {
				<-start
				if err := claim.Release(context.Background()); err != nil {
					t.Errorf("Release() error = %v", err)
				}
			})
		}
		close(start)
		wg.Wait()

		if got := calls.Load(); got != 1 {
			t.Fatalf("store received %d Commit/Release calls, want exactly 1", got)
		}
		if s := d.Stats(); s.Committed+s.Released != 1 {
			t.Fatalf("Stats() = %+v, want one claim committed or released", s)
		}
	}
}

func TestDedupeStatsAccumulate(t *testing.T) {
	store := newDedupeStore(t)
	gomock.InOrder(
		store.EXPECT().Claim(gomock.Any(), testTenant, "m1", gomock.Any(), gomock.Any()).Return(ports.ClaimAcquired, nil),
		store.EXPECT().Claim(gomock.Any(), testTenant, "m1", gomock.Any(), gomock.Any()).Return(ports.ClaimHeld, nil),
		store.EXPECT().Commit(gomock.Any(), testTenant, "m1", gomock.Any(), gomock.Any()).Return(true, nil),
		store.EXPECT().Claim(gomock.Any(), testTenant, "m1", gomock.Any(), gomock.Any()).Return(ports.ClaimCommitted, nil),
		store.EXPECT().Claim(gomock.Any(), testTenant, "m2", gomock.Any(), gomock.Any()).Return(ports.ClaimAcquired, nil),
		store.EXPECT().Release(gomock.Any(), testTenant, "m2", gomock.Any()).Return(true, nil),
		store.EXPECT().Claim(gomock.Any(), testTenant, "m2", gomock.Any(), gomock.Any()).Return(ports.ClaimAcquired, nil),
	)
	d := domain.NewDeduplicator(store, domain.DeduplicatorConfig{})
	ctx := context.Background()
	mustClaim := func(messageID string) *domain.Claim {
		t.Helper()
		c, err := d.Claim(ctx, testTenant, messageID)
		if err != nil {
			t.Fatalf("Claim(%q) error = %v", messageID, err)
		}
		return c
	}

	first := mustClaim("m1")
	dup := mustClaim("m1")
	if err := dup.Release(ctx); err != nil { // A duplicate's Release is a no-op.
		t.Fatalf("duplicate Release() error = %v", err)
	}
	if err := first.Commit(ctx); err != nil {
		t.Fatalf("Commit() error = %v", err)
	}
	mustClaim("m1")
	if err := mustClaim("m2").Release(ctx); err != nil {
		t.Fatalf("Release() error = %v", err)
	}
	mustClaim("m2")

	want := domain.DedupeStats{New: 3, InFlight: 1, Done: 1, Committed: 1, Released: 1}
	if got := d.Stats(); got != want {
		t.Errorf("Stats() = %+v, want %+v", got, want)
	}
}

func TestClaimStatusString(t *testing.T) {
	tests := []struct {
		give domain.ClaimStatus
		want string
	}{
		{give: domain.ClaimNew, want: "new"},
		{give: domain.ClaimInFlight, want: "in-flight"},
		{give: domain.ClaimDone, want: "done"},
		{give: 0, want: "ClaimStatus(0)"},
		{give: domain.ClaimDone + 1, want: "ClaimStatus(4)"},
		{give: -1, want: "ClaimStatus(-1)"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := tt.give.String(); got != tt.want {
				t.Errorf("ClaimStatus(%d).String() = %q, want %q", int(tt.give), got, tt.want)
			}
		})
	}
}

// TestDedupeStatsCountOnlySettledClaims: a commit or release that lost its
// claim is not counted as settled.
func TestDedupeStatsCountOnlySettledClaims(t *testing.T) {
	store := newDedupeStore(t)
	var owner string
	d, c := newClaim(t, store, domain.DeduplicatorConfig{}, &owner)
	store.EXPECT().Commit(gomock.Any(), testTenant, testMessage, gomock.Any(), gomock.Any()).Return(false, nil)
	if err := c.Commit(context.Background()); !errors.Is(err, domain.ErrClaimLost) {
		t.Fatalf("Commit = %v, want ErrClaimLost", err)
	}
	if got := d.Stats(); got.Committed != 0 || got.Released != 0 {
		t.Errorf("Stats() = %+v after a lost claim, want nothing settled", got)
	}
}

package failopen_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang/mock/gomock"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/wa2genesys/connectorcache/adapters/failopen"
	"github.com/wa2genesys/connectorcache/internal/mocks"
	"github.com/wa2genesys/connectorcache/internal/storeop"
	"github.com/wa2genesys/connectorcache/ports"
)

const (
	tenant    = "tenant-1"
	messageID = "wamid.HBgLMTU1NTEyMzQ1NjcVAgASGBQzQUVCNTM2"
	owner     = "owner-1"
	// secretToken is handed to PutToken; it must never reach a log line.
	secretToken = "secret-token-123"
)

var errStore = errors.New("redis GET genesys:token:tenant-1: i/o timeout")

// stores wraps fresh mocks in the decorators, logging to an observer.
type stores struct {
	nextTokens *mocks.MockTokenStore
	nextLock   *mocks.MockTokenLock
	nextDedupe *mocks.MockDedupeStore
	tokens     ports.TokenStore
	lock       ports.TokenLock
	dedupe     ports.DedupeStore
	events     *failopen.Events
	logs       *observer.ObservedLogs
}

func newStores(t *testing.T) stores {
	t.Helper()
	ctrl := gomock.NewController(t)
	core, logs := observer.New(zapcore.DebugLevel)
	log := zap.New(core)
	s := stores{
		nextTokens: mocks.NewMockTokenStore(ctrl),
		nextLock:   mocks.NewMockTokenLock(ctrl),
		nextDedupe: mocks.NewMockDedupeStore(ctrl),
		events:     &failopen.Events{},
		logs:       logs,
	}
	s.tokens = failopen.NewTokenStore(s.nextTokens, log, s.events)
	s.lock = failopen.NewTokenLock(s.nextLock, log, s.events)
	s.dedupe = failopen.NewDedupeStore(s.nextDedupe, log, s.events)
	return s
}

// getResult is what GetToken answered, without its error.
type getResult struct {
	Tok   ports.CachedToken
	Found bool
}

// ownedResult is what Commit or Release answered, without its error.
type ownedResult struct{ Owned bool }

// lockResult is what LockToken answered, without its error.
type lockResult struct{ Acquired bool }

// lockTTL is the TTL the tests lock with.
const lockTTL = 5 * time.Second

func TestDecorators_FailOpenOnError(t *testing.T) {
	ctx := context.Background()
	cached := ports.CachedToken{AccessToken: secretToken, ExpiresAt: time.Unix(1_900_000_000, 0)}

	tests := []struct {
		name string
		// give makes the wrapped store fail with err.
		give func(s stores, err error)
		// call runs the decorated operation and returns its answer.
		call          func(s stores) (any, error)
		want          any
		wantOp        string
		wantMessageID bool
	}{
		{
			name: "GetToken answers a miss",
			give: func(s stores, err error) {
				s.nextTokens.EXPECT().GetToken(gomock.Any(), tenant).Return(cached, true, err)
			},
			call: func(s stores) (any, error) {
				tok, found, err := s.tokens.GetToken(ctx, tenant)
				return getResult{tok, found}, err
			},
			want:   getResult{},
			wantOp: "get_token",
		},
		{
			name: "PutToken is skipped",
			give: func(s stores, err error) {
				s.nextTokens.EXPECT().PutToken(gomock.Any(), tenant, cached, time.Hour).Return(err)
			},
			call: func(s stores) (any, error) {
				return nil, s.tokens.PutToken(ctx, tenant, cached, time.Hour)
			},
			want:   nil,
			wantOp: "put_token",
		},
		{
			name: "DeleteToken is skipped",
			give: func(s stores, err error) {
				s.nextTokens.EXPECT().DeleteToken(gomock.Any(), tenant).Return(err)
			},
			call: func(s stores) (any, error) {
				return nil, s.tokens.DeleteToken(ctx, tenant)
			},
			want:   nil,
			wantOp: "delete_token",
		},
		{
			name: "LockToken answers acquired",
			give: func(s stores, err error) {
				s.nextLock.EXPECT().LockToken(gomock.Any(), tenant, owner, lockTTL).Return(false, err)
			},
			call: func(s stores) (any, error) {
				acquired, err := s.lock.LockToken(ctx, tenant, owner, lockTTL)
				return lockResult{acquired}, err
			},
			want:   lockResult{true},
			wantOp: "lock_token",
		},
		{
			name: "UnlockToken is skipped",
			give: func(s stores, err error) {
				s.nextLock.EXPECT().UnlockToken(gomock.Any(), tenant, owner).Return(err)
			},
			call: func(s stores) (any, error) {
				return nil, s.lock.UnlockToken(ctx, tenant, owner)
			},
			want:   nil,
			wantOp: "unlock_token",
		},
		{
			name: "Claim answers acquired",
			give: func(s stores, err error) {
				s.nextDedupe.EXPECT().Claim(gomock.Any(), tenant, messageID, owner, 5*time.Minute).Return(ports.ClaimCommitted, err)
			},
			call: func(s stores) (any, error) {
				return s.dedupe.Claim(ctx, tenant, messageID, owner, 5*time.Minute)
			},
			want:          ports.ClaimAcquired,
			wantOp:        "claim",
			wantMessageID: true,
		},
		{
			name: "Commit is skipped and answered as owned",
			give: func(s stores, err error) {
				s.nextDedupe.EXPECT().Commit(gomock.Any(), tenant, messageID, owner, 24*time.Hour).Return(false, err)
			},
			call: func(s stores) (any, error) {
				owned, err := s.dedupe.Commit(ctx, tenant, messageID, owner, 24*time.Hour)
				return ownedResult{owned}, err
			},
			want:          ownedResult{true},
			wantOp:        "commit",
			wantMessageID: true,
		},
		{
			name: "Release is skipped and answered as owned",
			give: func(s stores, err error) {
				s.nextDedupe.EXPECT().Release(gomock.Any(), tenant, messageID, owner).Return(false, err)
			},
			call: func(s stores) (any, error) {
				owned, err := s.dedupe.Release(ctx, tenant, messageID, owner)
				return ownedResult{owned}, err
			},
			want:          ownedResult{true},
			wantOp:        "release",
			wantMessageID: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStores(t)
			tt.give(s, errStore)

			got, err := tt.call(s)
			if err != nil {
				t.Fatalf("err = %v, want nil: the decorator must fail open", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("answer = %+v, want %+v", got, tt.want)
			}

			entries := s.logs.All()
			if len(entries) != 1 {
				t.Fatalf("logged %d entries, want exactly 1: %v", len(entries), entries)
			}
			e := entries[0]
			if e.Level != zapcore.WarnLevel {
				t.Errorf("level = %v, want warn", e.Level)
			}
			fields := e.ContextMap()
			wantFields := map[string]any{"op": tt.wantOp, "tenant": tenant, "error": errStore.Error()}
			if tt.wantMessageID {
				wantFields["message_id"] = messageID
			}
			if !reflect.DeepEqual(fields, wantFields) {
				t.Errorf("fields = %v, want %v", fields, wantFields)
			}
			assertNoSecret(t, s.logs, secretToken)

			if got, want := s.events.Snapshot(), map[string]uint64{tt.wantOp: 1}; !reflect.DeepEqual(got, want) {
				t.Errorf("events = %v, want %v", got, want)
			}
		})

		// An error wrapping ports.ErrUnavailable (an open breaker, which
		// reported the outage itself) is answered and counted the same
		// way, but not logged: an outage costs one warning, not one per
		// message.
		t.Run(tt.name+" when unavailable", func(t *testing.T) {
			s := newStores(t)
			tt.give(s, fmt.Errorf("%s: breaker open: %w", tt.wantOp, ports.ErrUnavailable))

			got, err := tt.call(s)
			if err != nil {
				t.Fatalf("err = %v, want nil: the decorator must fail open", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("answer = %+v, want %+v", got, tt.want)
			}
			if n := s.logs.Len(); n != 0 {
				t.Errorf("logged %d entries, want none: %v", n, s.logs.All())
			}
			if got, want := s.events.Snapshot(), map[string]uint64{tt.wantOp: 1}; !reflect.DeepEqual(got, want) {
				t.Errorf("events = %v, want %v", got, want)
			}
		})

		// A caller that gave up says nothing about the store: answered
		// the same way, neither logged nor counted.
		t.Run(tt.name+" when the caller gave up", func(t *testing.T) {
			s := newStores(t)
			tt.give(s, fmt.Errorf("%s: %w", tt.wantOp, context.Canceled))

			got, err := tt.call(s)
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("answer = %+v, %v; want %+v, nil", got, err, tt.want)
			}
			if n := s.logs.Len(); n != 0 {
				t.Errorf("logged %d entries, want none: %v", n, s.logs.All())
			}
			if got := s.events.Snapshot(); len(got) != 0 {
				t.Errorf("events = %v, want none", got)
			}
		})
	}
}

func TestDecorators_PassAnswersThrough(t *testing.T) {
	ctx := context.Background()
	cached := ports.CachedToken{AccessToken: secretToken, ExpiresAt: time.Unix(1_900_000_000, 0)}

	tests := []struct {
		name string
		give func(s stores)
		call func(s stores) (any, error)
		want any
	}{
		{
			name: "GetToken hit",
			give: func(s stores) { s.nextTokens.EXPECT().GetToken(gomock.Any(), tenant).Return(cached, true, nil) },
			call: func(s stores) (any, error) {
				tok, found, err := s.tokens.GetToken(ctx, tenant)
				return getResult{tok, found}, err
			},
			want: getResult{cached, true},
		},
		{
			name: "GetToken miss",
			give: func(s stores) {
				s.nextTokens.EXPECT().GetToken(gomock.Any(), tenant).Return(ports.CachedToken{}, false, nil)
			},
			call: func(s stores) (any, error) {
				tok, found, err := s.tokens.GetToken(ctx, tenant)
				return getResult{tok, found}, err
			},
			want: getResult{},
		},
		{
			name: "PutToken",
			give: func(s stores) { s.nextTokens.EXPECT().PutToken(gomock.Any(), tenant, cached, time.Minute).Return(nil) },
			call: func(s stores) (any, error) { return nil, s.tokens.PutToken(ctx, tenant, cached, time.Minute) },
			want: nil,
		},
		{
			name: "DeleteToken",
			give: func(s stores) { s.nextTokens.EXPECT().DeleteToken(gomock.Any(), tenant).Return(nil) },
			call: func(s stores) (any, error) { return nil, s.tokens.DeleteToken(ctx, tenant) },
			want: nil,
		},
		{
			name: "LockToken acquired",
			give: func(s stores) { s.nextLock.EXPECT().LockToken(gomock.Any(), tenant, owner, lockTTL).Return(true, nil) },
			call: func(s stores) (any, error) {
				acquired, err := s.lock.LockToken(ctx, tenant, owner, lockTTL)
				return lockResult{acquired}, err
			},
			want: lockResult{true},
		},
		{
			name: "LockToken held by another owner",
			give: func(s stores) { s.nextLock.EXPECT().LockToken(gomock.Any(), tenant, owner, lockTTL).Return(false, nil) },
			call: func(s stores) (any, error) {
				acquired, err := s.lock.LockToken(ctx, tenant, owner, lockTTL)
				return lockResult{acquired}, err
			},
			want: lockResult{false},
		},
		{
			name: "UnlockToken",
			give: func(s stores) { s.nextLock.EXPECT().UnlockToken(gomock.Any(), tenant, owner).Return(nil) },
			call: func(s stores) (any, error) { return nil, s.lock.UnlockToken(ctx, tenant, owner) },
			want: nil,
		},
		{
			name: "Claim acquired",
			give: func(s stores) {
				s.nextDedupe.EXPECT().Claim(gomock.Any(), tenant, messageID, owner, time.Minute).Return(ports.ClaimAcquired, nil)
			},
			call: func(s stores) (any, error) { return s.dedupe.Claim(ctx, tenant, messageID, owner, time.Minute) },
			want: ports.ClaimAcquired,
		},
		{
			name: "Claim held",
			give: func(s stores) {
				s.nextDedupe.EXPECT().Claim(gomock.Any(), tenant, messageID, owner, time.Minute).Return(ports.ClaimHeld, nil)
			},
			call: func(s stores) (any, error) { return s.dedupe.Claim(ctx, tenant, messageID, owner, time.Minute) },
			want: ports.ClaimHeld,
		},
		{
			name: "Claim committed",
			give: func(s stores) {
				s.nextDedupe.EXPECT().Claim(gomock.Any(), tenant, messageID, owner, time.Minute).Return(ports.ClaimCommitted, nil)
			},
			call: func(s stores) (any, error) { return s.dedupe.Claim(ctx, tenant, messageID, owner, time.Minute) },
			want: ports.ClaimCommitted,
		},
		{
			name: "Commit owned",
			give: func(s stores) {
				s.nextDedupe.EXPECT().Commit(gomock.Any(), tenant, messageID, owner, time.Hour).Return(true, nil)
			},
			call: func(s stores) (any, error) {
				owned, err := s.dedupe.Commit(ctx, tenant, messageID, owner, time.Hour)
				return ownedResult{owned}, err
			},
			want: ownedResult{true},
		},
		{
			name: "Commit not owned",
			give: func(s stores) {
				s.nextDedupe.EXPECT().Commit(gomock.Any(), tenant, messageID, owner, time.Hour).Return(false, nil)
			},
			call: func(s stores) (any, error) {
				owned, err := s.dedupe.Commit(ctx, tenant, messageID, owner, time.Hour)
				return ownedResult{owned}, err
			},
			want: ownedResult{false},
		},
		{
			name: "Release owned",
			give: func(s stores) {
				s.nextDedupe.EXPECT().Release(gomock.Any(), tenant, messageID, owner).Return(true, nil)
			},
			call: func(s stores) (any, error) {
				owned, err := s.dedupe.Release(ctx, tenant, messageID, owner)
				return ownedResult{owned}, err
			},
			want: ownedResult{true},
		},
		{
			name: "Release not owned",
			give: func(s stores) {
				s.nextDedupe.EXPECT().Release(gomock.Any(), tenant, messageID, owner).Return(false, nil)
			},
			call: func(s stores) (any, error) {
				owned, err := s.dedupe.Release(ctx, tenant, messageID, owner)
				return ownedResult{owned}, err
			},
			want: ownedResult{false},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStores(t)
			tt.give(s)

			got, err := tt.call(s)
			if err != nil {
				t.Fatalf("err = %v, want nil", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("answer = %+v, want %+v", got, tt.want)
			}
			if n := s.logs.Len(); n != 0 {
				t.Errorf("logged %d entries on success, want none: %v", n, s.logs.All())
			}
			if got := s.events.Snapshot(); len(got) != 0 {
				t.Errorf("events = %v on success, want none", got)
			}
		})
	}
}

func TestDecorators_PassContextThrough(t *testing.T) {
	type ctxKey struct{}
	ctx := context.WithValue(context.Background(), ctxKey{}, "request-7")
	hasValue := gomock.AssignableToTypeOf(ctx)
	s := newStores(t)

	s.nextTokens.EXPECT().GetToken(hasValue, tenant).DoAndReturn(
		func(got context.Context, _ string) (ports.CachedToken, bool, error) {
			if got.Value(ctxKey{}) != "request-7" {
				t.Error("GetToken: the caller's context was not passed on")
			}
			return ports.CachedToken{}, false, nil
		})
	s.nextDedupe.EXPECT().Claim(hasValue, tenant, messageID, owner, time.Minute).DoAndReturn(
		func(got context.Context, _, _, _ string, _ time.Duration) (ports.ClaimState, error) {
			if got.Value(ctxKey{}) != "request-7" {
				t.Error("Claim: the caller's context was not passed on")
			}
			return ports.ClaimAcquired, nil
		})

	if _, _, err := s.tokens.GetToken(ctx, tenant); err != nil {
		t.Fatal(err)
	}
	if _, err := s.dedupe.Claim(ctx, tenant, messageID, owner, time.Minute); err != nil {
		t.Fatal(err)
	}
}

func TestDecorators_NilLoggerAndNilEvents(t *testing.T) {
	ctx := context.Background()
	ctrl := gomock.NewController(t)
	nextTokens := mocks.NewMockTokenStore(ctrl)
	nextLock := mocks.NewMockTokenLock(ctrl)
	nextDedupe := mocks.NewMockDedupeStore(ctrl)
	tokens := failopen.NewTokenStore(nextTokens, nil, nil)
	lock := failopen.NewTokenLock(nextLock, nil, nil)
	dedupe := failopen.NewDedupeStore(nextDedupe, nil, nil)

	nextTokens.EXPECT().GetToken(gomock.Any(), tenant).Return(ports.CachedToken{}, false, errStore)
	nextTokens.EXPECT().PutToken(gomock.Any(), tenant, gomock.Any(), time.Hour).Return(errStore)
	nextTokens.EXPECT().DeleteToken(gomock.Any(), tenant).Return(errStore)
	nextLock.EXPECT().LockToken(gomock.Any(), tenant, owner, lockTTL).Return(false, errStore)
	nextLock.EXPECT().UnlockToken(gomock.Any(), tenant, owner).Return(errStore)
	nextDedupe.EXPECT().Claim(gomock.Any(), tenant, messageID, owner, time.Minute).Return(ports.ClaimState(0), errStore)
	nextDedupe.EXPECT().Commit(gomock.Any(), tenant, messageID, owner, time.Hour).Return(false, errStore)
	nextDedupe.EXPECT().Release(gomock.Any(), tenant, messageID, owner).Return(false, errStore)

	if _, found, err := tokens.GetToken(ctx, tenant); found || err != nil {
		t.Errorf("GetToken = found %v, err %v; want a miss and nil", found, err)
	}
	if err := tokens.PutToken(ctx, tenant, ports.CachedToken{AccessToken: secretToken}, time.Hour); err != nil {
		t.Errorf("PutToken = %v, want nil", err)
	}
	if err := tokens.DeleteToken(ctx, tenant); err != nil {
		t.Errorf("DeleteToken = %v, want nil", err)
	}
	if acquired, err := lock.LockToken(ctx, tenant, owner, lockTTL); !acquired || err != nil {
		t.Errorf("LockToken = %v, %v; want acquired, nil", acquired, err)
	}
	if err := lock.UnlockToken(ctx, tenant, owner); err != nil {
		t.Errorf("UnlockToken = %v, want nil", err)
	}
	if state, err := dedupe.Claim(ctx, tenant, messageID, owner, time.Minute); state != ports.ClaimAcquired || err != nil {
		t.Errorf("Claim = %v, %v; want acquired, nil", state, err)
	}
	if owned, err := dedupe.Commit(ctx, tenant, messageID, owner, time.Hour); !owned || err != nil {
		t.Errorf("Commit = %v, %v; want true, nil", owned, err)
	}
	if owned, err := dedupe.Release(ctx, tenant, messageID, owner); !owned || err != nil {
		t.Errorf("Release = %v, %v; want true, nil", owned, err)
	}
}

func TestEvents_NilSnapshotIsEmpty(t *testing.T) {
	var e *failopen.Events
	got := e.Snapshot()
	if got == nil || len(got) != 0 {
		t.Errorf("Snapshot of nil Events = %#v, want an empty, non-nil map", got)
	}
}

func TestEvents_CountsByOperationConcurrently(t *testing.T) {
	const workers, perWorker = 8, 50
	s := newStores(t)
	s.nextDedupe.EXPECT().Claim(gomock.Any(), gomock.Any(), gomock.Any(), gomock.Any(), gomock.Any()).
		Return(ports.ClaimState(0), errStore).Times(workers * perWorker)
	s.nextTokens.EXPECT().GetToken(gomock.Any(), gomock.Any()).
		Return(ports.CachedToken{}, false, errStore).Times(workers * perWorker)
	s.nextTokens.EXPECT().DeleteToken(gomock.Any(), gomock.Any()).Return(errStore).Times(3)

	ctx := context.Background()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				id := fmt.Sprintf("wamid.%d.%d", w, i)
				if _, err := s.dedupe.Claim(ctx, tenant, id, owner, time.Minute); err != nil {
					t.Error(err)
				}
				if _, _, err := s.tokens.GetToken(ctx, tenant); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	for range 3 {
		_ = s.tokens.DeleteToken(ctx, tenant)
	}

	want := map[string]uint64{"claim": workers * perWorker, "get_token": workers * perWorker, "delete_token": 3}
	if got := s.events.Snapshot(); !reflect.DeepEqual(got, want) {
		t.Errorf("events = %v, want %v", got, want)
	}
	if got, want := s.logs.FilterLevelExact(zapcore.WarnLevel).Len(), 2*workers*perWorker+3; got != want {
		t.Errorf("warnings = %d, want one per failure: %d", got, want)
	}
}

func TestEvents_SnapshotIsACopy(t *testing.T) {
	s := newStores(t)
	s.nextTokens.EXPECT().DeleteToken(gomock.Any(), tenant).Return(errStore).Times(2)

	_ = s.tokens.DeleteToken(context.Background(), tenant)
	snap := s.events.Snapshot()
	snap["delete_token"] = 100
	_ = s.tokens.DeleteToken(context.Background(), tenant)

	if got := s.events.Snapshot()["delete_token"]; got != 2 {
		t.Errorf("delete_token = %d, want 2: editing a snapshot must not change the counts", got)
	}
}

// assertNoSecret fails when secret appears in any logged message or field.
func assertNoSecret(t *testing.T, logs *observer.ObservedLogs, secret string) {
	t.Helper()
	for _, e := range logs.All() {
		line := e.Message + " " + fmt.Sprint(e.ContextMap())
		if strings.Contains(line, secret) {
			t.Errorf("a log line holds the secret %q: %s", secret, line)
		}
	}
}

// TestDecorators_CountEveryStoreOperation fails every operation of every
// decorator once: each is counted under its name in storeop.All, which the
// connector exports, and nothing else is counted.
func TestDecorators_CountEveryStoreOperation(t *testing.T) {
	ctx := context.Background()
	s := newStores(t)

	s.nextTokens.EXPECT().GetToken(gomock.Any(), tenant).Return(ports.CachedToken{}, false, errStore)
	s.nextTokens.EXPECT().PutToken(gomock.Any(), tenant, gomock.Any(), time.Hour).Return(errStore)
	s.nextTokens.EXPECT().DeleteToken(gomock.Any(), tenant).Return(errStore)
	s.nextTokens.EXPECT().DeleteTokenIf(gomock.Any(), tenant, "rejected").Return(true, errStore)
	s.nextLock.EXPECT().LockToken(gomock.Any(), tenant, owner, time.Second).Return(false, errStore)
	s.nextLock.EXPECT().UnlockToken(gomock.Any(), tenant, owner).Return(errStore)
	s.nextDedupe.EXPECT().Claim(gomock.Any(), tenant, messageID, owner, time.Minute).Return(ports.ClaimState(0), errStore)
	s.nextDedupe.EXPECT().Commit(gomock.Any(), tenant, messageID, owner, time.Hour).Return(false, errStore)
	s.nextDedupe.EXPECT().Release(gomock.Any(), tenant, messageID, owner).Return(false, errStore)

	_, _, _ = s.tokens.GetToken(ctx, tenant)
	_ = s.tokens.PutToken(ctx, tenant, ports.CachedToken{}, time.Hour)
	_ = s.tokens.DeleteToken(ctx, tenant)
	if deleted, err := s.tokens.DeleteTokenIf(ctx, tenant, "rejected"); deleted || err != nil {
		t.Errorf("failed DeleteTokenIf = %v, %v; want false, nil: skipped", deleted, err)
	}
	_, _ = s.lock.LockToken(ctx, tenant, owner, time.Second)
	_ = s.lock.UnlockToken(ctx, tenant, owner)
	_, _ = s.dedupe.Claim(ctx, tenant, messageID, owner, time.Minute)
	_, _ = s.dedupe.Commit(ctx, tenant, messageID, owner, time.Hour)
	_, _ = s.dedupe.Release(ctx, tenant, messageID, owner)

	want := map[string]uint64{}
	for _, op := range storeop.All {
		want[op] = 1
	}
	if got := s.events.Snapshot(); !reflect.DeepEqual(got, want) {
		t.Errorf("events = %v, want each of storeop.All once: %v", got, want)
	}
}

func TestReporter_Report(t *testing.T) {
	tests := []struct {
		name       string
		give       error
		wantCount  uint64
		wantLogged int
	}{
		{name: "a store error is counted and logged", give: errStore, wantCount: 1, wantLogged: 1},
		{name: "an open breaker is counted, not logged", give: fmt.Errorf("get token: %w", ports.ErrUnavailable), wantCount: 1},
		{name: "a caller's cancellation is neither", give: context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			core, logs := observer.New(zapcore.DebugLevel)
			events := &failopen.Events{}
			failopen.NewReporter(zap.New(core), events).Report(storeop.GetToken, tenant, tt.give)

			if got := events.Snapshot()[storeop.GetToken]; got != tt.wantCount {
				t.Errorf("get_token counted %d times, want %d", got, tt.wantCount)
			}
			warnings := logs.FilterLevelExact(zapcore.WarnLevel).All()
			if len(warnings) != tt.wantLogged {
				t.Fatalf("logged %d warnings, want %d", len(warnings), tt.wantLogged)
			}
			for _, w := range warnings {
				fields := w.ContextMap()
				if fields["op"] != storeop.GetToken || fields["tenant"] != tenant || fields["error"] != tt.give.Error() {
					t.Errorf("warning fields = %v, want op get_token, tenant %s, error %v", fields, tenant, tt.give)
				}
			}
		})
	}
	t.Run("nil logger and events do not panic", func(t *testing.T) {
		failopen.NewReporter(nil, nil).Report(storeop.GetToken, tenant, errStore)
	})
}

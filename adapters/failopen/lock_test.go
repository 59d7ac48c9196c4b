package failopen_test

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/golang/mock/gomock"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/wa2genesys/connectorcache/adapters/failopen"
	"github.com/wa2genesys/connectorcache/internal/mocks"
	"github.com/wa2genesys/connectorcache/ports"
)

// lockTTL is the TTL the lock tests lock with.
const lockTTL = 5 * time.Second

// lockFixture wraps a fresh mock in the fail-open TokenLock, logging to an
// observer.
type lockFixture struct {
	next   *mocks.MockTokenLock
	lock   ports.TokenLock
	events *failopen.Events
	logs   *observer.ObservedLogs
}

func newLockFixture(t *testing.T) lockFixture {
	t.Helper()
	core, logs := observer.New(zapcore.DebugLevel)
	f := lockFixture{
		next:   mocks.NewMockTokenLock(gomock.NewController(t)),
		events: &failopen.Events{},
		logs:   logs,
	}
	f.lock = failopen.NewTokenLock(f.next, zap.New(core), f.events)
	return f
}

// lockResult is what LockToken answered, without its error.
type lockResult struct{ Acquired bool }

// lockOp is one TokenLock operation through the decorator: give makes the
// wrapped lock fail with err, call runs the decorated operation and
// returns its answer without the error, and want is the answer it fails
// open with, under the fail-open event op.
type lockOp struct {
	name string
	give func(f lockFixture, err error)
	call func(f lockFixture) (any, error)
	want any
	op   string
}

// lockOps covers both TokenLock operations. The wrapped lock answers a
// failed LockToken with "not acquired", so that a test can tell it from
// the decorator's own answer.
var lockOps = []lockOp{
	{
		name: "LockToken answers acquired",
		give: func(f lockFixture, err error) {
			f.next.EXPECT().LockToken(gomock.Any(), tenant, owner, lockTTL).Return(false, err)
		},
		call: func(f lockFixture) (any, error) {
			acquired, err := f.lock.LockToken(context.Background(), tenant, owner, lockTTL)
			return lockResult{acquired}, err
		},
		want: lockResult{true},
		op:   "lock_token",
	},
	{
		name: "UnlockToken is skipped",
		give: func(f lockFixture, err error) {
			f.next.EXPECT().UnlockToken(gomock.Any(), tenant, owner).Return(err)
		},
		call: func(f lockFixture) (any, error) {
			return nil, f.lock.UnlockToken(context.Background(), tenant, owner)
		},
		want: nil,
		op:   "unlock_token",
	},
}

func TestTokenLock_PassesAnswersThrough(t *testing.T) {
	tests := []struct {
		name string
		give func(f lockFixture)
		call func(f lockFixture) (any, error)
		want any
	}{
		{
			name: "LockToken acquired",
			give: func(f lockFixture) { f.next.EXPECT().LockToken(gomock.Any(), tenant, owner, lockTTL).Return(true, nil) },
			call: func(f lockFixture) (any, error) {
				acquired, err := f.lock.LockToken(context.Background(), tenant, owner, lockTTL)
				return lockResult{acquired}, err
			},
			want: lockResult{true},
		},
		{
			name: "LockToken not acquired",
			give: func(f lockFixture) {
				f.next.EXPECT().LockToken(gomock.Any(), tenant, owner, lockTTL).Return(false, nil)
			},
			call: func(f lockFixture) (any, error) {
				acquired, err := f.lock.LockToken(context.Background(), tenant, owner, lockTTL)
				return lockResult{acquired}, err
			},
			want: lockResult{false},
		},
		{
			name: "UnlockToken",
			give: func(f lockFixture) { f.next.EXPECT().UnlockToken(gomock.Any(), tenant, owner).Return(nil) },
			call: func(f lockFixture) (any, error) {
				return nil, f.lock.UnlockToken(context.Background(), tenant, owner)
			},
			want: nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newLockFixture(t)
			tt.give(f)

			got, err := tt.call(f)
			if err != nil {
				t.Fatalf("err = %v, want nil", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("answer = %+v, want %+v", got, tt.want)
			}
			if n := f.logs.Len(); n != 0 {
				t.Errorf("logged %d entries on success, want none: %v", n, f.logs.All())
			}
			if got := f.events.Snapshot(); len(got) != 0 {
				t.Errorf("events = %v on success, want none", got)
			}
		})
	}
}

func TestTokenLock_FailsOpenOnError(t *testing.T) {
	tests := []struct {
		name        string
		give        error
		wantLogged  bool
		wantCounted bool
	}{
		{
			name:        "store error",
			give:        errStore,
			wantLogged:  true,
			wantCounted: true,
		},
		{
			name:        "deadline exceeded",
			give:        fmt.Errorf("redis SET NX GET genesys:token-lock:%s: %w", tenant, context.DeadlineExceeded),
			wantLogged:  true,
			wantCounted: true,
		},
		{
			// An open breaker reported the outage itself: an outage costs
			// one warning, not one per fetch.
			name:        "breaker open",
			give:        fmt.Errorf("lock token: breaker open: %w", ports.ErrUnavailable),
			wantLogged:  false,
			wantCounted: true,
		},
		{
			// The caller gave up: nothing to say about the store.
			name:        "caller canceled",
			give:        fmt.Errorf("redis unlock genesys:token-lock:%s: %w", tenant, context.Canceled),
			wantLogged:  false,
			wantCounted: false,
		},
	}
	for _, o := range lockOps {
		for _, tt := range tests {
			t.Run(o.name+"/"+tt.name, func(t *testing.T) {
				f := newLockFixture(t)
				o.give(f, tt.give)

				got, err := o.call(f)
				if err != nil {
					t.Fatalf("err = %v, want nil: the decorator must fail open", err)
				}
				if !reflect.DeepEqual(got, o.want) {
					t.Errorf("answer = %+v, want %+v", got, o.want)
				}

				wantEvents := map[string]uint64{}
				if tt.wantCounted {
					wantEvents[o.op] = 1
				}
				if got := f.events.Snapshot(); !reflect.DeepEqual(got, wantEvents) {
					t.Errorf("events = %v, want %v", got, wantEvents)
				}

				assertNoSecret(t, f.logs, owner)
				entries := f.logs.All()
				if !tt.wantLogged {
					if len(entries) != 0 {
						t.Errorf("logged %d entries, want none: %v", len(entries), entries)
					}
					return
				}
				if len(entries) != 1 {
					t.Fatalf("logged %d entries, want exactly 1: %v", len(entries), entries)
				}
				e := entries[0]
				if e.Level != zapcore.WarnLevel {
					t.Errorf("level = %v, want warn", e.Level)
				}
				wantFields := map[string]any{"op": o.op, "tenant": tenant, "error": tt.give.Error()}
				if fields := e.ContextMap(); !reflect.DeepEqual(fields, wantFields) {
					t.Errorf("fields = %v, want %v", fields, wantFields)
				}
			})
		}
	}
}

func TestTokenLock_NilLoggerAndNilEvents(t *testing.T) {
	ctx := context.Background()
	next := mocks.NewMockTokenLock(gomock.NewController(t))
	lock := failopen.NewTokenLock(next, nil, nil)

	next.EXPECT().LockToken(gomock.Any(), tenant, owner, lockTTL).Return(false, errStore)
	next.EXPECT().UnlockToken(gomock.Any(), tenant, owner).Return(errStore)

	if acquired, err := lock.LockToken(ctx, tenant, owner, lockTTL); !acquired || err != nil {
		t.Errorf("LockToken = %v, %v; want acquired, nil", acquired, err)
	}
	if err := lock.UnlockToken(ctx, tenant, owner); err != nil {
		t.Errorf("UnlockToken = %v, want nil", err)
	}
}

package breaker_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/golang/mock/gomock"
	"go.uber.org/zap/zapcore"

	"github.com/wa2genesys/connectorcache/adapters/breaker"
	"github.com/wa2genesys/connectorcache/adapters/memory"
	"github.com/wa2genesys/connectorcache/internal/contract"
	"github.com/wa2genesys/connectorcache/internal/mocks"
	"github.com/wa2genesys/connectorcache/ports"
)

// lockTTL is the TTL the lock tests lock with.
const lockTTL = 5 * time.Second

// lockFixture is a fixture whose breaker also guards a mock TokenLock.
type lockFixture struct {
	fixture
	nextLock *mocks.MockTokenLock
	lock     ports.TokenLock
}

func newLockFixture(t *testing.T, s breaker.Settings) lockFixture {
	t.Helper()
	f := lockFixture{fixture: newFixture(t, s), nextLock: mocks.NewMockTokenLock(gomock.NewController(t))}
	f.lock = breaker.NewTokenLock(f.nextLock, f.brk)
	return f
}

// lockOps returns the TokenLock operations of f as ops, to run with fail
// next to the stores' ops. The wrapped lock answers "acquired", so that a
// test can tell it from the breaker's own answer.
func (f lockFixture) lockOps() []op {
	return []op{
		{
			name: "LockToken",
			expect: func(_ fixture, err error) *gomock.Call {
				return f.nextLock.EXPECT().LockToken(gomock.Any(), tenant, owner, lockTTL).Return(true, err)
			},
			call: func(ctx context.Context, _ fixture) (any, error) {
				return f.lock.LockToken(ctx, tenant, owner, lockTTL)
			},
		},
		{
			name: "UnlockToken",
			expect: func(_ fixture, err error) *gomock.Call {
				return f.nextLock.EXPECT().UnlockToken(gomock.Any(), tenant, owner).Return(err)
			},
			call: func(ctx context.Context, _ fixture) (any, error) {
				return nil, f.lock.UnlockToken(ctx, tenant, owner)
			},
		},
	}
}

// allOps returns the stores' ops and f's lock ops, by name.
func (f lockFixture) allOps() map[string]op {
	all := make(map[string]op)
	for _, o := range append(f.lockOps(), ops...) {
		all[o.name] = o
	}
	return all
}

func TestTokenLock_ClosedPassesAnswersAndErrorsThrough(t *testing.T) {
	tests := []struct {
		name    string
		give    func(f lockFixture)
		call    func(f lockFixture) (any, error)
		want    any
		wantErr error
	}{
		{
			name: "LockToken acquired",
			give: func(f lockFixture) {
				f.nextLock.EXPECT().LockToken(gomock.Any(), tenant, owner, lockTTL).Return(true, nil)
			},
			call: func(f lockFixture) (any, error) {
				return f.lock.LockToken(context.Background(), tenant, owner, lockTTL)
			},
			want: true,
		},
		{
			name: "LockToken not acquired",
			give: func(f lockFixture) {
				f.nextLock.EXPECT().LockToken(gomock.Any(), tenant, owner, lockTTL).Return(false, nil)
			},
			call: func(f lockFixture) (any, error) {
				return f.lock.LockToken(context.Background(), tenant, owner, lockTTL)
			},
			want: false,
		},
		{
			name: "LockToken error",
			give: func(f lockFixture) {
				f.nextLock.EXPECT().LockToken(gomock.Any(), tenant, owner, lockTTL).Return(true, errRedis)
			},
			call: func(f lockFixture) (any, error) {
				return f.lock.LockToken(context.Background(), tenant, owner, lockTTL)
			},
			want:    true,
			wantErr: errRedis,
		},
		{
			name: "UnlockToken",
			give: func(f lockFixture) {
				f.nextLock.EXPECT().UnlockToken(gomock.Any(), tenant, owner).Return(nil)
			},
			call: func(f lockFixture) (any, error) { return nil, f.lock.UnlockToken(context.Background(), tenant, owner) },
			want: nil,
		},
		{
			name: "UnlockToken error",
			give: func(f lockFixture) {
				f.nextLock.EXPECT().UnlockToken(gomock.Any(), tenant, owner).Return(errRedis)
			},
			call:    func(f lockFixture) (any, error) { return nil, f.lock.UnlockToken(context.Background(), tenant, owner) },
			want:    nil,
			wantErr: errRedis,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newLockFixture(t, breaker.Settings{Failures: 3, Cooldown: longCooldown})
			tt.give(f)
			got, err := tt.call(f)
			if err != tt.wantErr {
				t.Errorf("error = %v, want the wrapped lock's %v unchanged", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("answer = %+v, want the wrapped lock's %+v", got, tt.want)
			}
			wantState(t, f.brk, breaker.Closed)
			if n := f.logs.Len(); n != 0 {
				t.Errorf("logged %d lines (%q), want none while closed", n, transitions(f.logs))
			}
		})
	}
}

func TestTokenLock_OpensAfterConsecutiveFailures(t *testing.T) {
	const failures = 3
	for _, name := range []string{"LockToken", "UnlockToken"} {
		t.Run(name+" fails", func(t *testing.T) {
			f := newLockFixture(t, breaker.Settings{Failures: failures, Cooldown: longCooldown})
			all := f.allOps()
			failing := all[name]

			fail(t, f.fixture, failing, failures-1, errRedis)
			wantState(t, f.brk, breaker.Closed)
			wantTransitions(t, f.logs)

			fail(t, f.fixture, failing, 1, errRedis)
			wantState(t, f.brk, breaker.Open)
			wantRefused(t, f)

			warns := f.logs.FilterLevelExact(zapcore.WarnLevel).All()
			if len(warns) != 1 || warns[0].Message != openedMessage {
				t.Fatalf("logged warnings %q, want exactly one %q", transitions(f.logs), openedMessage)
			}
			wantTransitions(t, f.logs, "warn closed->open")
		})
	}
}

// wantRefused fails t unless every operation of the lock and the stores
// is refused with [ports.ErrUnavailable] and a zero answer. No expectation
// is set: gomock fails the test on any call that reaches a wrapped store.
func wantRefused(t *testing.T, f lockFixture) {
	t.Helper()
	for name, o := range f.allOps() {
		got, err := o.call(t.Context(), f.fixture)
		wantUnavailable(t, name, err)
		if !strings.Contains(err.Error(), "breaker open") {
			t.Errorf("%s error = %q, want it to say the breaker is open", name, err)
		}
		want := zeroAnswer(name)
		if name == "LockToken" {
			want = false
		}
		if got != want {
			t.Errorf("%s answer = %+v, want %+v while open", name, got, want)
		}
	}
}

func TestTokenLock_SharesTheBreakerWithTheStores(t *testing.T) {
	tests := []struct {
		name string
		give []string // the operations that fail, in order; the last one opens the breaker
	}{
		{name: "lock failures open it for the stores", give: []string{"LockToken", "UnlockToken", "LockToken"}},
		{name: "token store failures open it for the lock", give: []string{"GetToken", "PutToken", "DeleteToken"}},
		{name: "interleaved failures count as one run", give: []string{"GetToken", "LockToken", "Claim", "UnlockToken", "PutToken"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newLockFixture(t, breaker.Settings{Failures: uint32(len(tt.give)), Cooldown: longCooldown})
			all := f.allOps()
			for _, name := range tt.give[:len(tt.give)-1] {
				fail(t, f.fixture, all[name], 1, errRedis)
			}
			wantState(t, f.brk, breaker.Closed)
			fail(t, f.fixture, all[tt.give[len(tt.give)-1]], 1, errRedis)
			wantState(t, f.brk, breaker.Open)
			wantRefused(t, f)
			if n := f.logs.FilterMessage(openedMessage).Len(); n != 1 {
				t.Errorf("logged %q %d times, want once for the lock and the stores", openedMessage, n)
			}
		})
	}
}

// TestTokenLock_NotAcquiredIsNotAFailure checks that a lock held by
// another owner is an answer: it neither counts as a failure nor leaves a
// run of failures standing.
func TestTokenLock_NotAcquiredIsNotAFailure(t *testing.T) {
	const failures = 2
	f := newLockFixture(t, breaker.Settings{Failures: failures, Cooldown: longCooldown})
	lock := f.lockOps()[0]
	notAcquired := func(n int) {
		t.Helper()
		f.nextLock.EXPECT().LockToken(gomock.Any(), tenant, owner, lockTTL).Return(false, nil).Times(n)
		for i := range n {
			if acquired, err := f.lock.LockToken(t.Context(), tenant, owner, lockTTL); acquired || err != nil {
				t.Fatalf("LockToken %d = %v, %v; want not acquired, nil", i+1, acquired, err)
			}
		}
	}

	notAcquired(10 * failures)
	wantState(t, f.brk, breaker.Closed)
	for range 5 {
		fail(t, f.fixture, lock, failures-1, errRedis)
		notAcquired(1)
	}
	wantState(t, f.brk, breaker.Closed)
	wantTransitions(t, f.logs)

	fail(t, f.fixture, lock, failures, errRedis)
	wantState(t, f.brk, breaker.Open)
}

// TestTokenLock_Contract runs the TokenLock contract through a closed
// breaker: it must not change a single answer.
func TestTokenLock_Contract(t *testing.T) {
	settings := breaker.Settings{Failures: contractFailures, Cooldown: longCooldown}
	contract.TokenLock(t, func(*testing.T) ports.TokenLock {
		return breaker.NewTokenLock(memory.NewTokenLock(), breaker.New("memory", settings, nil))
	})
}

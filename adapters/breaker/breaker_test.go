package breaker_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang/mock/gomock"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/wa2genesys/connectorcache/adapters/breaker"
	"github.com/wa2genesys/connectorcache/adapters/memory"
	"github.com/wa2genesys/connectorcache/internal/contract"
	"github.com/wa2genesys/connectorcache/internal/mocks"
	"github.com/wa2genesys/connectorcache/ports"
)

const (
	tenant    = "tenant-1"
	messageID = "wamid.HBgLMTU1NTEyMzQ1NjcVAgASGBQzQUVCNTM2"
	owner     = "owner-1"
	claimTTL  = 5 * time.Minute
	doneTTL   = 24 * time.Hour
	// secretToken is handed to PutToken; it must never reach a log line or
	// an error the breaker makes.
	secretToken = "secret-token-123"

	// openedMessage and changedMessage are the breaker's log messages.
	openedMessage  = "circuit breaker opened; skipping the store and failing open"
	changedMessage = "circuit breaker state changed"

	// pollTimeout bounds how long a test waits for a cool-down to pass.
	pollTimeout = 5 * time.Second
	// shortCooldown is a cool-down tests wait out.
	shortCooldown = 50 * time.Millisecond
	// longCooldown is a cool-down no test outlives.
	longCooldown = time.Hour
	// contractFailures keeps a breaker closed through the errors the
	// store contracts provoke on purpose (refused TTLs).
	contractFailures = 100
)

var (
	errRedis = errors.New("redis GET genesys:token:tenant-1: connection refused")
	cached   = ports.CachedToken{AccessToken: secretToken, ExpiresAt: time.Unix(1_900_000_000, 0)}
)

// fixture is a breaker guarding a mock token store and a mock dedupe store,
// logging to an observer.
type fixture struct {
	brk        *breaker.Breaker
	nextTokens *mocks.MockTokenStore
	nextDedupe *mocks.MockDedupeStore
	tokens     ports.TokenStore
	dedupe     ports.DedupeStore
	logs       *observer.ObservedLogs
}

func newFixture(t *testing.T, s breaker.Settings) fixture {
	t.Helper()
	ctrl := gomock.NewController(t)
	core, logs := observer.New(zapcore.DebugLevel)
	f := fixture{
		brk:        breaker.New("redis", s, zap.New(core)),
		nextTokens: mocks.NewMockTokenStore(ctrl),
		nextDedupe: mocks.NewMockDedupeStore(ctrl),
		logs:       logs,
	}
	f.tokens = breaker.NewTokenStore(f.nextTokens, f.brk)
	f.dedupe = breaker.NewDedupeStore(f.nextDedupe, f.brk)
	return f
}

// op is one operation through the guarded stores: expect sets up what the
// wrapped store answers (err, and otherwise a fixed answer), call runs it
// and returns its answer without the error.
type op struct {
	name   string
	expect func(f fixture, err error) *gomock.Call
	call   func(ctx context.Context, f fixture) (any, error)
}

// getResult is what GetToken answered, without its error.
type getResult struct {
	Tok   ports.CachedToken
	Found bool
}

// ops covers every guarded operation. The wrapped store's answers are not
// zero values, so that a test can tell them from the breaker's own.
var ops = []op{
	{
		name: "GetToken",
		expect: func(f fixture, err error) *gomock.Call {
			return f.nextTokens.EXPECT().GetToken(gomock.Any(), tenant).Return(cached, true, err)
		},
		call: func(ctx context.Context, f fixture) (any, error) {
			tok, found, err := f.tokens.GetToken(ctx, tenant)
			return getResult{tok, found}, err
		},
	},
	{
		name: "PutToken",
		expect: func(f fixture, err error) *gomock.Call {
			return f.nextTokens.EXPECT().PutToken(gomock.Any(), tenant, cached, time.Hour).Return(err)
		},
		call: func(ctx context.Context, f fixture) (any, error) {
			return nil, f.tokens.PutToken(ctx, tenant, cached, time.Hour)
		},
	},
	{
		name: "DeleteToken",
		expect: func(f fixture, err error) *gomock.Call {
			return f.nextTokens.EXPECT().DeleteToken(gomock.Any(), tenant).Return(err)
		},
		call: func(ctx context.Context, f fixture) (any, error) {
			return nil, f.tokens.DeleteToken(ctx, tenant)
		},
	},
	{
		name: "Claim",
		expect: func(f fixture, err error) *gomock.Call {
			return f.nextDedupe.EXPECT().Claim(gomock.Any(), tenant, messageID, owner, claimTTL).Return(ports.ClaimHeld, err)
		},
		call: func(ctx context.Context, f fixture) (any, error) {
			return f.dedupe.Claim(ctx, tenant, messageID, owner, claimTTL)
		},
	},
	{
		name: "Commit",
		expect: func(f fixture, err error) *gomock.Call {
			return f.nextDedupe.EXPECT().Commit(gomock.Any(), tenant, messageID, owner, doneTTL).Return(true, err)
		},
		call: func(ctx context.Context, f fixture) (any, error) {
			return f.dedupe.Commit(ctx, tenant, messageID, owner, doneTTL)
		},
	},
	{
		name: "Release",
		expect: func(f fixture, err error) *gomock.Call {
			return f.nextDedupe.EXPECT().Release(gomock.Any(), tenant, messageID, owner).Return(true, err)
		},
		call: func(ctx context.Context, f fixture) (any, error) {
			return f.dedupe.Release(ctx, tenant, messageID, owner)
		},
	},
}

// fail makes n calls of o that the wrapped store answers with err.
func fail(t *testing.T, f fixture, o op, n int, err error) {
	t.Helper()
	o.expect(f, err).Times(n)
	for range n {
		if _, got := o.call(t.Context(), f); !errors.Is(got, err) {
			t.Fatalf("%s error = %v, want the wrapped store's %v", o.name, got, err)
		}
	}
}

// wantState fails t unless b is in state want.
func wantState(t *testing.T, b *breaker.Breaker, want breaker.State) {
	t.Helper()
	if got := b.State(); got != want {
		t.Fatalf("State() = %s, want %s", got, want)
	}
}

// awaitState polls b until it is in state want, and fails t when it is not
// within pollTimeout.
func awaitState(t *testing.T, b *breaker.Breaker, want breaker.State) {
	t.Helper()
	deadline := time.Now().Add(pollTimeout)
	for b.State() != want {
		if time.Now().After(deadline) {
			t.Fatalf("State() = %s after %v, want %s", b.State(), pollTimeout, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// transitions lists the state changes logged, as "from->to" at level.
func transitions(logs *observer.ObservedLogs) []string {
	var out []string
	for _, e := range logs.All() {
		fields := e.ContextMap()
		out = append(out, fmt.Sprintf("%s %v->%v", e.Level, fields["from"], fields["to"]))
	}
	return out
}

func wantTransitions(t *testing.T, logs *observer.ObservedLogs, want ...string) {
	t.Helper()
	got := transitions(logs)
	if strings.Join(got, ", ") != strings.Join(want, ", ") {
		t.Fatalf("logged transitions = %q, want %q", got, want)
	}
}

// wantUnavailable fails t unless err is the breaker's refusal.
func wantUnavailable(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, ports.ErrUnavailable) {
		t.Fatalf("%s error = %v, want one wrapping ports.ErrUnavailable", what, err)
	}
	if strings.Contains(err.Error(), secretToken) {
		t.Fatalf("%s error %q holds the access token", what, err)
	}
}

func TestStore_ClosedPassesResultsAndErrorsThrough(t *testing.T) {
	for _, o := range ops {
		for _, give := range []error{nil, errRedis} {
			t.Run(fmt.Sprintf("%s/%v", o.name, give), func(t *testing.T) {
				f := newFixture(t, breaker.Settings{Failures: 3, Cooldown: longCooldown})
				o.expect(f, give)
				got, err := o.call(t.Context(), f)
				if err != give {
					t.Errorf("error = %v, want the wrapped store's %v unchanged", err, give)
				}
				want := wantAnswer(o.name)
				if got != want {
					t.Errorf("answer = %+v, want the wrapped store's %+v", got, want)
				}
				wantState(t, f.brk, breaker.Closed)
				if n := f.logs.Len(); n != 0 {
					t.Errorf("logged %d lines (%q), want none while closed", n, transitions(f.logs))
				}
			})
		}
	}
}

// wantAnswer is the answer each entry of ops makes its wrapped store give.
func wantAnswer(name string) any {
	switch name {
	case "GetToken":
		return getResult{cached, true}
	case "Claim":
		return ports.ClaimHeld
	case "Commit", "Release":
		return true
	}
	return nil
}

func TestStore_AnswersAreNotFailures(t *testing.T) {
	const failures = 2
	// calls is far past the failure threshold.
	const calls = 10 * failures

	tests := []struct {
		name string
		give func(f fixture) *gomock.Call
		call func(f fixture) (any, error)
		want any
	}{
		{
			name: "token miss",
			give: func(f fixture) *gomock.Call {
				return f.nextTokens.EXPECT().GetToken(gomock.Any(), tenant).Return(ports.CachedToken{}, false, nil)
			},
			call: func(f fixture) (any, error) {
				tok, found, err := f.tokens.GetToken(context.Background(), tenant)
				return getResult{tok, found}, err
			},
			want: getResult{},
		},
		{
			name: "claim held",
			give: func(f fixture) *gomock.Call {
				return f.nextDedupe.EXPECT().Claim(gomock.Any(), tenant, messageID, owner, claimTTL).Return(ports.ClaimHeld, nil)
			},
			call: func(f fixture) (any, error) {
				return f.dedupe.Claim(context.Background(), tenant, messageID, owner, claimTTL)
			},
			want: ports.ClaimHeld,
		},
		{
			name: "claim committed",
			give: func(f fixture) *gomock.Call {
				return f.nextDedupe.EXPECT().Claim(gomock.Any(), tenant, messageID, owner, claimTTL).Return(ports.ClaimCommitted, nil)
			},
			call: func(f fixture) (any, error) {
				return f.dedupe.Claim(context.Background(), tenant, messageID, owner, claimTTL)
			},
			want: ports.ClaimCommitted,
		},
		{
			name: "commit not owned",
			give: func(f fixture) *gomock.Call {
				return f.nextDedupe.EXPECT().Commit(gomock.Any(), tenant, messageID, owner, doneTTL).Return(false, nil)
			},
			call: func(f fixture) (any, error) {
				return f.dedupe.Commit(context.Background(), tenant, messageID, owner, doneTTL)
			},
			want: false,
		},
		{
			name: "release not owned",
			give: func(f fixture) *gomock.Call {
				return f.nextDedupe.EXPECT().Release(gomock.Any(), tenant, messageID, owner).Return(false, nil)
			},
			call: func(f fixture) (any, error) {
				return f.dedupe.Release(context.Background(), tenant, messageID, owner)
			},
			want: false,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, breaker.Settings{Failures: failures, Cooldown: longCooldown})
			tt.give(f).Times(calls)
			for i := range calls {
				got, err := tt.call(f)
				if err != nil || got != tt.want {
					t.Fatalf("call %d = %+v, %v; want %+v, nil", i+1, got, err, tt.want)
				}
			}
			wantState(t, f.brk, breaker.Closed)
			wantTransitions(t, f.logs)
		})
	}
}

func TestStore_OpensAfterConsecutiveFailures(t *testing.T) {
	const failures = 3
	for _, failing := range ops {
		t.Run(failing.name+" fails", func(t *testing.T) {
			f := newFixture(t, breaker.Settings{Failures: failures, Cooldown: longCooldown})

			fail(t, f, failing, failures-1, errRedis)
			wantState(t, f.brk, breaker.Closed)
			wantTransitions(t, f.logs)

			fail(t, f, failing, 1, errRedis)
			wantState(t, f.brk, breaker.Open)

			// No expectations are set from here on: gomock fails the test
			// on any call that reaches a wrapped store.
			for _, o := range ops {
				got, err := o.call(t.Context(), f)
				wantUnavailable(t, o.name, err)
				if !strings.Contains(err.Error(), "breaker open") {
					t.Errorf("%s error = %q, want it to say the breaker is open", o.name, err)
				}
				if want := zeroAnswer(o.name); got != want {
					t.Errorf("%s answer = %+v, want %+v while open", o.name, got, want)
				}
			}

			warns := f.logs.FilterLevelExact(zapcore.WarnLevel).All()
			if len(warns) != 1 {
				t.Fatalf("logged %d warnings, want exactly 1: %q", len(warns), transitions(f.logs))
			}
			w := warns[0]
			if w.Message != openedMessage {
				t.Errorf("warning = %q, want %q", w.Message, openedMessage)
			}
			want := map[string]any{"breaker": "redis", "from": "closed", "to": "open", "cooldown": longCooldown}
			for k, v := range want {
				if got := w.ContextMap()[k]; got != v {
					t.Errorf("warning field %s = %v, want %v", k, got, v)
				}
			}
			wantTransitions(t, f.logs, "warn closed->open")
			for _, e := range f.logs.All() {
				if strings.Contains(fmt.Sprint(e.Message, e.ContextMap()), secretToken) {
					t.Errorf("log line %q %v holds the access token", e.Message, e.ContextMap())
				}
			}
		})
	}
}

// zeroAnswer is what each entry of ops answers when the breaker refuses it.
func zeroAnswer(name string) any {
	switch name {
	case "GetToken":
		return getResult{}
	case "Claim":
		return ports.ClaimState(0)
	case "Commit", "Release":
		return false
	}
	return nil
}

func TestStore_SuccessEndsTheFailureRun(t *testing.T) {
	const failures = 3
	get := ops[0]
	f := newFixture(t, breaker.Settings{Failures: failures, Cooldown: longCooldown})

	for range 5 {
		fail(t, f, get, failures-1, errRedis)
		fail(t, f, get, 1, nil)
	}
	wantState(t, f.brk, breaker.Closed)

	fail(t, f, get, failures, errRedis)
	wantState(t, f.brk, breaker.Open)
}

func TestStore_CanceledCallsAreNotFailures(t *testing.T) {
	const failures = 2
	canceled := fmt.Errorf("redis GET: %w", context.Canceled)

	tests := []struct {
		name string
		give []error
		want breaker.State
	}{
		{name: "canceled calls alone", give: []error{canceled, canceled, canceled, canceled, canceled}, want: breaker.Closed},
		{name: "canceled calls between failures neither count nor reset the run", give: []error{errRedis, canceled, canceled, errRedis}, want: breaker.Open},
		{name: "deadline exceeded is a failure (a hung Redis)", give: []error{context.DeadlineExceeded, context.DeadlineExceeded}, want: breaker.Open},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, breaker.Settings{Failures: failures, Cooldown: longCooldown})
			for _, err := range tt.give {
				fail(t, f, ops[3], 1, err)
			}
			wantState(t, f.brk, tt.want)
		})
	}
}

func TestStore_TokenAndDedupeStoresShareOneBreaker(t *testing.T) {
	f := newFixture(t, breaker.Settings{Failures: uint32(len(ops)), Cooldown: longCooldown})
	// One failure of each operation, token and dedupe interleaved.
	for _, i := range []int{0, 3, 1, 4, 2} {
		fail(t, f, ops[i], 1, errRedis)
	}
	wantState(t, f.brk, breaker.Closed)
	fail(t, f, ops[5], 1, errRedis)
	wantState(t, f.brk, breaker.Open)

	for _, o := range ops {
		_, err := o.call(t.Context(), f)
		wantUnavailable(t, o.name, err)
	}
	if n := f.logs.FilterMessage(openedMessage).Len(); n != 1 {
		t.Errorf("logged %q %d times, want once for both stores", openedMessage, n)
	}
}

// openFixture returns a fixture whose breaker opened after one failure and
// is now half-open.
func openFixture(t *testing.T, s breaker.Settings) fixture {
	t.Helper()
	s.Failures = 1
	s.Cooldown = shortCooldown
	f := newFixture(t, s)
	fail(t, f, ops[0], 1, errRedis)
	awaitState(t, f.brk, breaker.HalfOpen)
	return f
}

func TestStore_ProbeAfterCooldown(t *testing.T) {
	t.Run("success closes", func(t *testing.T) {
		f := openFixture(t, breaker.Settings{})
		fail(t, f, ops[3], 1, nil)
		wantState(t, f.brk, breaker.Closed)
		wantTransitions(t, f.logs, "warn closed->open", "info open->half-open", "info half-open->closed")
		if n := f.logs.FilterMessage(changedMessage).FilterField(zap.String("to", "closed")).Len(); n != 1 {
			t.Errorf("logged %q to closed %d times, want once", changedMessage, n)
		}
		// Closed again: calls go through.
		fail(t, f, ops[1], 1, nil)
		fail(t, f, ops[4], 1, nil)
	})
	t.Run("failure reopens", func(t *testing.T) {
		f := openFixture(t, breaker.Settings{})
		reopened := time.Now()
		fail(t, f, ops[3], 1, errRedis)
		// The log first: reading the state after the cool-down would turn
		// the breaker half-open and log that too.
		wantTransitions(t, f.logs, "warn closed->open", "info open->half-open", "warn half-open->open")
		wantOpenSince(t, f.brk, reopened)
		if n := f.logs.FilterMessage(openedMessage).Len(); n != 2 {
			t.Errorf("logged %q %d times, want twice", openedMessage, n)
		}

		// Open for another cool-down, then a probe again.
		awaitState(t, f.brk, breaker.HalfOpen)
		fail(t, f, ops[0], 1, nil)
		wantState(t, f.brk, breaker.Closed)
	})
}

// wantOpenSince fails t unless b, which opened no earlier than since, is
// open, or half-open only because its short cool-down has passed already.
func wantOpenSince(t *testing.T, b *breaker.Breaker, since time.Time) {
	t.Helper()
	got := b.State()
	if got == breaker.Open || got == breaker.HalfOpen && time.Since(since) >= shortCooldown {
		return
	}
	t.Fatalf("State() = %s %v after the failed probe, want open", got, time.Since(since))
}

func TestStore_HalfOpenLetsProbesThroughOnly(t *testing.T) {
	tests := []struct {
		name string
		give uint32 // Settings.Probes
		want int    // probes let through at once
	}{
		{name: "default is one probe", give: 0, want: breaker.DefaultProbes},
		{name: "three probes", give: 3, want: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := openFixture(t, breaker.Settings{Probes: tt.give})

			// Probes block in the wrapped store until released.
			entered := make(chan struct{})
			release := make(chan struct{})
			f.nextTokens.EXPECT().GetToken(gomock.Any(), tenant).Times(tt.want).
				DoAndReturn(func(context.Context, string) (ports.CachedToken, bool, error) {
					entered <- struct{}{}
					<-release
					return cached, true, nil
				})
			var wg sync.WaitGroup
			for range tt.want {
				wg.Go(func() {
					if _, _, err := f.tokens.GetToken(context.Background(), tenant); err != nil {
						t.Errorf("probe error = %v, want nil", err)
					}
				})
				<-entered
			}

			// Every probe is in flight: one more call is refused without
			// reaching the wrapped store.
			_, err := ops[3].call(t.Context(), f)
			wantUnavailable(t, "call beyond the probes", err)
			if !strings.Contains(err.Error(), "breaker half-open") {
				t.Errorf("error = %q, want it to say the breaker is half-open", err)
			}
			wantState(t, f.brk, breaker.HalfOpen)

			close(release)
			wg.Wait()
			wantState(t, f.brk, breaker.Closed)
		})
	}
}

func TestStore_CanceledProbeLetsAnotherThrough(t *testing.T) {
	f := openFixture(t, breaker.Settings{})
	fail(t, f, ops[0], 1, context.Canceled)
	wantState(t, f.brk, breaker.HalfOpen)
	fail(t, f, ops[0], 1, nil)
	wantState(t, f.brk, breaker.Closed)
}

// TestStore_PanickingProbeIsAFailure makes the half-open probe panic: the
// panic goes on to the caller, and counts as a failed probe, so that the
// breaker opens and probes again after its cool-down instead of waiting
// for the lost probe forever.
func TestStore_PanickingProbeIsAFailure(t *testing.T) {
	f := openFixture(t, breaker.Settings{})
	f.nextTokens.EXPECT().GetToken(gomock.Any(), tenant).DoAndReturn(
		func(context.Context, string) (ports.CachedToken, bool, error) { panic("store bug") })
	func() {
		defer func() {
			if v := recover(); v != "store bug" {
				t.Errorf("recovered %v, want the store's panic", v)
			}
		}()
		_, _, _ = f.tokens.GetToken(t.Context(), tenant)
	}()
	wantTransitions(t, f.logs, "warn closed->open", "info open->half-open", "warn half-open->open")
	awaitState(t, f.brk, breaker.HalfOpen)
	fail(t, f, ops[0], 1, nil)
	wantState(t, f.brk, breaker.Closed)
}

func TestNew_ZeroSettingsMeanDefaults(t *testing.T) {
	f := newFixture(t, breaker.Settings{})

	fail(t, f, ops[0], breaker.DefaultFailures-1, errRedis)
	wantState(t, f.brk, breaker.Closed)
	start := time.Now()
	fail(t, f, ops[0], 1, errRedis)
	wantState(t, f.brk, breaker.Open)
	opened := f.logs.FilterMessage(openedMessage).All()
	if len(opened) != 1 {
		t.Fatalf("logged %q %d times, want once", openedMessage, len(opened))
	}
	if got := opened[0].ContextMap()["cooldown"]; got != breaker.DefaultCooldown {
		t.Errorf("logged cooldown = %v, want %v", got, breaker.DefaultCooldown)
	}

	awaitState(t, f.brk, breaker.HalfOpen)
	// The breaker opened after start, so it cannot have turned half-open
	// before start + DefaultCooldown.
	if waited := time.Since(start); waited < breaker.DefaultCooldown {
		t.Errorf("half-open after %v, want no sooner than the default cool-down %v", waited, breaker.DefaultCooldown)
	}
}

func TestNew_NilLoggerLogsNothingAndWorks(t *testing.T) {
	ctrl := gomock.NewController(t)
	next := mocks.NewMockTokenStore(ctrl)
	b := breaker.New("redis", breaker.Settings{Failures: 1, Cooldown: longCooldown}, nil)
	s := breaker.NewTokenStore(next, b)

	next.EXPECT().DeleteToken(gomock.Any(), tenant).Return(errRedis)
	if err := s.DeleteToken(t.Context(), tenant); err != errRedis {
		t.Fatalf("DeleteToken error = %v, want %v", err, errRedis)
	}
	wantState(t, b, breaker.Open)
	wantUnavailable(t, "DeleteToken", s.DeleteToken(t.Context(), tenant))
}

func TestState_String(t *testing.T) {
	tests := []struct {
		give breaker.State
		want string
	}{
		{give: breaker.Closed, want: "closed"},
		{give: breaker.HalfOpen, want: "half-open"},
		{give: breaker.Open, want: "open"},
	}
	for _, tt := range tests {
		if got := tt.give.String(); got != tt.want {
			t.Errorf("%#v.String() = %q, want %q", tt.give, got, tt.want)
		}
	}
}

// TestStore_Contract runs the store contracts through a closed breaker: it
// must not change a single answer.
func TestStore_Contract(t *testing.T) {
	settings := breaker.Settings{Failures: contractFailures, Cooldown: longCooldown}
	t.Run("TokenStore", func(t *testing.T) {
		contract.TokenStore(t, func(*testing.T) ports.TokenStore {
			return breaker.NewTokenStore(memory.NewTokenStore(), breaker.New("memory", settings, nil))
		})
	})
	t.Run("DedupeStore", func(t *testing.T) {
		contract.DedupeStore(t, func(*testing.T) ports.DedupeStore {
			return breaker.NewDedupeStore(memory.NewDedupeStore(), breaker.New("memory", settings, nil))
		})
	})
}

// TestBreaker_LeavesNoGoroutine drives concurrent callers through every
// state, one phase at a time, so that each phase ends in a known state
// whatever the interleaving: all calls failing open the breaker; calls
// while it is open are refused; once it is half-open, succeeding calls
// close it. No goroutine may be left behind.
func TestBreaker_LeavesNoGoroutine(t *testing.T) {
	defer goleak.VerifyNone(t)

	f := newFixture(t, breaker.Settings{Failures: 3, Cooldown: shortCooldown})
	var failing atomic.Bool
	failing.Store(true)
	answer := func() error {
		if failing.Load() {
			return errRedis
		}
		return nil
	}
	f.nextTokens.EXPECT().GetToken(gomock.Any(), tenant).AnyTimes().
		DoAndReturn(func(context.Context, string) (ports.CachedToken, bool, error) {
			return cached, true, answer()
		})
	f.nextDedupe.EXPECT().Claim(gomock.Any(), tenant, messageID, owner, claimTTL).AnyTimes().
		DoAndReturn(func(context.Context, string, string, string, time.Duration) (ports.ClaimState, error) {
			return ports.ClaimAcquired, answer()
		})
	callers := func() {
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for range 50 {
					_, _, _ = f.tokens.GetToken(context.Background(), tenant)
					_, _ = f.dedupe.Claim(context.Background(), tenant, messageID, owner, claimTTL)
				}
			})
		}
		wg.Wait()
	}

	callers()
	if f.logs.FilterMessage(openedMessage).Len() == 0 {
		t.Fatal("every call failed, yet the breaker never opened")
	}
	awaitState(t, f.brk, breaker.HalfOpen)
	failing.Store(false)
	callers()
	wantState(t, f.brk, breaker.Closed)
}

func TestBreaker_ResetLetsTheNextCallThrough(t *testing.T) {
	const failures = 2
	f := newFixture(t, breaker.Settings{Failures: failures, Cooldown: longCooldown})
	claim := ops[slices.IndexFunc(ops, func(o op) bool { return o.name == "Claim" })]
	fail(t, f, claim, failures, errRedis)
	wantState(t, f.brk, breaker.Open)

	f.brk.Reset("redis primary moved")
	wantState(t, f.brk, breaker.Closed)
	claim.expect(f, nil)
	if _, err := claim.call(t.Context(), f); err != nil {
		t.Fatalf("Claim after Reset: %v, want it to reach the store", err)
	}
	resets := f.logs.FilterMessage("circuit breaker reset").All()
	if len(resets) != 1 || resets[0].ContextMap()["from"] != "open" || resets[0].ContextMap()["reason"] != "redis primary moved" {
		t.Errorf("reset log lines = %v, want one saying it was open and why", resets)
	}
	// The failures counted before the reset are forgotten: it takes a
	// full run of them to open again.
	fail(t, f, claim, failures-1, errRedis)
	wantState(t, f.brk, breaker.Closed)
}

func TestBreaker_RunGuardsACall(t *testing.T) {
	brk := breaker.New("redis node 127.0.0.1:7001", breaker.Settings{Failures: 2, Cooldown: longCooldown}, nil)
	calls := 0
	failing := func() error { calls++; return errRedis }
	for range 2 {
		if err := brk.Run(failing); !errors.Is(err, errRedis) {
			t.Fatalf("Run while closed = %v, want the call's error", err)
		}
	}
	wantState(t, brk, breaker.Open)
	err := brk.Run(failing)
	if !errors.Is(err, ports.ErrUnavailable) || calls != 2 {
		t.Fatalf("Run while open = %v after %d calls, want ErrUnavailable without a third call", err, calls)
	}
	if !strings.Contains(err.Error(), "127.0.0.1:7001") {
		t.Errorf("refusal %q does not name the breaker", err)
	}
}

// TestBreaker_PanicWhileClosedIsAFailure: a call that panics while the
// breaker is closed, and clean, counts as a failure all the same.
func TestBreaker_PanicWhileClosedIsAFailure(t *testing.T) {
	brk := breaker.New("redis", breaker.Settings{Failures: 1, Cooldown: longCooldown}, nil)
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("the panic did not reach the caller")
			}
		}()
		_ = brk.Run(func() error { panic("store bug") })
	}()
	wantState(t, brk, breaker.Open)
}

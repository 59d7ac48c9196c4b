// Package breaker puts a circuit breaker (github.com/sony/gobreaker/v2) in
// front of the store ports. After a run of failures it opens: calls return
// [ports.ErrUnavailable] at once, without touching the backend, so that a
// dead or hung Redis costs nothing per message. After a cool-down one probe
// goes through (half-open); its success closes the breaker again.
//
// One breaker guards one backend: share it between the token and dedupe
// stores of one Redis. Misses, lost claims and an owner check that fails are
// answers, not failures; only errors count.
package breaker

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"
	"go.uber.org/zap"

	"github.com/wa2genesys/connectorcache/internal/storeop"
	"github.com/wa2genesys/connectorcache/ports"
)

// Defaults for [Settings] fields left zero.
const (
	DefaultFailures = 5
	DefaultCooldown = time.Second
	DefaultProbes   = 1
)

// Settings tunes a [Breaker].
type Settings struct {
	// Failures is how many consecutive failures open the breaker. Zero
	// means DefaultFailures.
	Failures uint32
	// Cooldown is how long the breaker stays open before it lets a probe
	// through. Zero means DefaultCooldown.
	Cooldown time.Duration
	// Probes is how many calls may go through while half-open. Zero means
	// DefaultProbes.
	Probes uint32
}

// State is a breaker's state.
type State string

// The breaker's states.
const (
	Closed   State = "closed"
	HalfOpen State = "half-open"
	Open     State = "open"
)

// Breaker is a circuit breaker for one backend. It is safe for concurrent use.
type Breaker struct {
	cur   atomic.Pointer[generation]
	fresh func() *gobreaker.TwoStepCircuitBreaker[struct{}]
	log   *zap.Logger
}

// generation is one gobreaker breaker, from New or a Reset to the next
// Reset.
type generation struct {
	cb *gobreaker.TwoStepCircuitBreaker[struct{}]
	// clean is true while cb is closed and counts no failure since its
	// last success: a call that succeeds then changes nothing, and runs
	// without taking cb's lock (twice) on the way in and out. It is
	// updated after each call that reached cb.
	clean atomic.Bool
}

func (b *Breaker) newGeneration() *generation {
	g := &generation{cb: b.fresh()}
	g.clean.Store(true)
	return g
}

// settle notes whether g is clean after a call it counted.
func (g *generation) settle() {
	g.clean.Store(g.cb.State() == gobreaker.StateClosed && g.cb.Counts().ConsecutiveFailures == 0)
}

// New returns a closed Breaker. It logs one warning each time it opens and
// one info line each time it closes or turns half-open. A nil log means no
// logging.
func New(name string, s Settings, log *zap.Logger) *Breaker {
	if log == nil {
		log = zap.NewNop()
	}
	if s.Failures == 0 {
		s.Failures = DefaultFailures
	}
	if s.Cooldown <= 0 {
		s.Cooldown = DefaultCooldown
	}
	if s.Probes == 0 {
		s.Probes = DefaultProbes
	}
	st := gobreaker.Settings{
		Name:        name,
		MaxRequests: s.Probes,
		Timeout:     s.Cooldown,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= s.Failures },
		// A caller that gave up says nothing about the backend.
		IsExcluded: func(err error) bool { return errors.Is(err, context.Canceled) },
		OnStateChange: func(name string, from, to gobreaker.State) {
			fields := []zap.Field{zap.String("breaker", name), zap.String("from", stateOf(from).String()), zap.String("to", stateOf(to).String())}
			if to == gobreaker.StateOpen {
				log.Warn("circuit breaker opened; skipping the store and failing open", append(fields, zap.Duration("cooldown", s.Cooldown))...)
				return
			}
			log.Info("circuit breaker state changed", fields...)
		},
	}
	b := &Breaker{
		fresh: func() *gobreaker.TwoStepCircuitBreaker[struct{}] {
			return gobreaker.NewTwoStepCircuitBreaker[struct{}](st)
		},
		log: log,
	}
	b.cur.Store(b.newGeneration())
	return b
}

// State returns the breaker's current state.
func (b *Breaker) State() State { return stateOf(b.cur.Load().cb.State()) }

// Reset closes the breaker and forgets the failures it counted, because
// the backend they came from was replaced (a new Redis primary): the next
// call goes through rather than waiting for the cool-down.
func (b *Breaker) Reset(reason string) {
	old := b.cur.Swap(b.newGeneration()).cb
	if st := stateOf(old.State()); st != Closed {
		b.log.Info("circuit breaker reset", zap.String("breaker", old.Name()),
			zap.String("from", st.String()), zap.String("reason", reason))
	}
}

func (s State) String() string { return string(s) }

func stateOf(s gobreaker.State) State {
	switch s {
	case gobreaker.StateOpen:
		return Open
	case gobreaker.StateHalfOpen:
		return HalfOpen
	}
	return Closed
}

// guard runs call unless the breaker refuses it, and tells the breaker how
// it went. A refusal wraps [ports.ErrUnavailable]. A call that panics is a
// failure (and panics on): were it not reported, a probe would hold its
// half-open slot for good.
//
// While the breaker is clean (closed, no failure counted since the last
// success), a call runs without asking the breaker, which would let it
// through, and only a failure is reported, after the fact, as if it had
// asked: a success would change nothing. A success that ends while
// another call's failure is reported may then go uncounted, as if it had
// finished just before that failure.
func guard[T any](b *Breaker, op string, call func() (T, error)) (T, error) {
	g := b.cur.Load()
	if g.clean.Load() {
		defer func() {
			if v := recover(); v != nil {
				g.report(errPanicked)
				panic(v)
			}
		}()
		v, err := call()
		if err != nil {
			g.report(err)
		}
		return v, err
	}
	done, err := g.cb.Allow()
	if err != nil {
		var zero T
		return zero, fmt.Errorf("%s: breaker %s: %w", op, b.State(), ports.ErrUnavailable)
	}
	defer func() {
		if v := recover(); v != nil {
			done(errPanicked)
			g.settle()
			panic(v)
		}
	}()
	v, err := call()
	done(err)
	g.settle()
	return v, err
}

// report counts err, the failure of a call that ran without asking g.
func (g *generation) report(err error) {
	if done, refused := g.cb.Allow(); refused == nil {
		done(err)
	}
	g.settle()
}

var errPanicked = errors.New("breaker: store panicked")

// Run runs call unless the breaker refuses it, and tells the breaker how
// it went: call's error is the backend's health. A refusal wraps
// [ports.ErrUnavailable]. It guards a Redis Cluster node's commands inside
// the client (a redigo Guard), where store calls cannot tell nodes apart.
func (b *Breaker) Run(call func() error) error {
	return guardErr(b, b.cur.Load().cb.Name(), call)
}

// guardErr is guard for a call that answers only an error.
func guardErr(b *Breaker, op string, call func() error) error {
	_, err := guard(b, op, func() (struct{}, error) { return struct{}{}, call() })
	return err
}

// NewTokenStore returns next guarded by b.
func NewTokenStore(next ports.TokenStore, b *Breaker) ports.TokenStore {
	return &tokenStore{next: next, b: b}
}

type tokenStore struct {
	next ports.TokenStore
	b    *Breaker
}

func (s *tokenStore) GetToken(ctx context.Context, tenantID string) (tok ports.CachedToken, found bool, err error) {
	tok, err = guard(s.b, storeop.GetToken, func() (ports.CachedToken, error) {
		tok, found, err = s.next.GetToken(ctx, tenantID)
		return tok, err
	})
	return tok, found, err
}

func (s *tokenStore) PutToken(ctx context.Context, tenantID string, tok ports.CachedToken, ttl time.Duration) error {
	return guardErr(s.b, storeop.PutToken, func() error { return s.next.PutToken(ctx, tenantID, tok, ttl) })
}

func (s *tokenStore) DeleteToken(ctx context.Context, tenantID string) error {
	return guardErr(s.b, storeop.DeleteToken, func() error { return s.next.DeleteToken(ctx, tenantID) })
}

func (s *tokenStore) DeleteTokenIf(ctx context.Context, tenantID, accessToken string) (bool, error) {
	return guard(s.b, storeop.DeleteTokenIf, func() (bool, error) { return s.next.DeleteTokenIf(ctx, tenantID, accessToken) })
}

// NewTokenLock returns next guarded by b.
func NewTokenLock(next ports.TokenLock, b *Breaker) ports.TokenLock {
	return &tokenLock{next: next, b: b}
}

type tokenLock struct {
	next ports.TokenLock
	b    *Breaker
}

func (l *tokenLock) LockToken(ctx context.Context, tenantID, owner string, ttl time.Duration) (bool, error) {
	return guard(l.b, storeop.LockToken, func() (bool, error) { return l.next.LockToken(ctx, tenantID, owner, ttl) })
}

func (l *tokenLock) UnlockToken(ctx context.Context, tenantID, owner string) error {
	return guardErr(l.b, storeop.UnlockToken, func() error { return l.next.UnlockToken(ctx, tenantID, owner) })
}

// NewDedupeStore returns next guarded by b.
func NewDedupeStore(next ports.DedupeStore, b *Breaker) ports.DedupeStore {
	return &dedupeStore{next: next, b: b}
}

type dedupeStore struct {
	next ports.DedupeStore
	b    *Breaker
}

func (s *dedupeStore) Claim(ctx context.Context, tenantID, messageID, owner string, ttl time.Duration) (ports.ClaimState, error) {
	return guard(s.b, storeop.Claim, func() (ports.ClaimState, error) { return s.next.Claim(ctx, tenantID, messageID, owner, ttl) })
}

func (s *dedupeStore) Commit(ctx context.Context, tenantID, messageID, owner string, ttl time.Duration) (bool, error) {
	return guard(s.b, storeop.Commit, func() (bool, error) { return s.next.Commit(ctx, tenantID, messageID, owner, ttl) })
}

func (s *dedupeStore) Release(ctx context.Context, tenantID, messageID, owner string) (bool, error) {
	return guard(s.b, storeop.Release, func() (bool, error) { return s.next.Release(ctx, tenantID, messageID, owner) })
}

package redigo

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gomodule/redigo/redis"
)

// Sentinel finds the primary through Redis Sentinel. The zero value (no
// Master) means the URL names the server itself.
type Sentinel struct {
	// Master is the name the sentinels monitor the primary under.
	Master string
	// Addrs are the sentinels' host:port addresses, asked in order; the
	// first to answer is asked first from then on. It must not be empty
	// when Master is set.
	Addrs []string
	// Username and Password authenticate to the sentinels themselves.
	// Empty when they require none.
	Username, Password string
}

// Errors of a primary lookup through Sentinel; a dial that fails for
// either wraps it.
var (
	ErrNoSentinel    = errors.New("redigo: no sentinel reachable")
	ErrUnknownMaster = errors.New("redigo: sentinels do not know this master")
)

// Sentinel timings.
const (
	// sentinelTimeout bounds connecting to one sentinel and its answer,
	// when the dial timeout is not shorter: an unreachable sentinel costs
	// a dial at most this long before the next one is asked.
	sentinelTimeout = 500 * time.Millisecond
	// watchPing is how often the subscription to +switch-master is
	// PINGed; a sentinel silent for three of these is given up.
	watchPing = time.Second
	// watchRetry and watchRetryMax space out attempts to subscribe again
	// while no sentinel answers.
	watchRetry    = 100 * time.Millisecond
	watchRetryMax = 2 * time.Second
)

// switchChannel is where sentinels announce a new primary:
// "<master> <old ip> <old port> <new ip> <new port>".
const switchChannel = "+switch-master"

// sentinels asks Sentinel where the primary is and follows its
// announcements, as the Sentinel client guidelines describe.
type sentinels struct {
	master  string
	opts    []redis.DialOption
	timeout time.Duration

	mu    sync.Mutex
	addrs []string // the one that answered last first

	// noRole is set once the primary refused ROLE (an ACL user without
	// admin commands): connections are then not checked, and a replica
	// reached by mistake is caught by its READONLY reply instead.
	noRole atomic.Bool
}

func newSentinels(s Sentinel, o Options, useTLS bool) *sentinels {
	timeout := sentinelTimeout
	if o.DialTimeout > 0 {
		timeout = min(timeout, o.DialTimeout)
	}
	opts := []redis.DialOption{redis.DialConnectTimeout(timeout)}
	if s.Username != "" {
		opts = append(opts, redis.DialUsername(s.Username))
	}
	if s.Password != "" {
		opts = append(opts, redis.DialPassword(s.Password))
	}
	if useTLS {
		opts = append(opts, redis.DialUseTLS(true), redis.DialTLSHandshakeTimeout(timeout))
		if o.TLSConfig != nil {
			opts = append(opts, redis.DialTLSConfig(o.TLSConfig))
		}
	}
	return &sentinels{master: s.Master, opts: opts, timeout: timeout, addrs: slices.Clone(s.Addrs)}
}

// primaryAddr asks the sentinels in turn where the primary is. The first
// that names it moves to the front of the list. An answer that stale says
// is out of date is passed over for the next sentinel's.
func (s *sentinels) primaryAddr(ctx context.Context, stale func(addr string) bool) (string, error) {
	var (
		unreachable []error
		unknown     bool
		outdated    string
	)
	for _, sentinel := range s.ordered() {
		if ctx.Err() != nil {
			break
		}
		addr, err := s.ask(ctx, sentinel)
		switch {
		case err == nil && stale(addr):
			outdated = addr
		case err == nil:
			s.first(sentinel)
			return addr, nil
		case errors.Is(err, ErrUnknownMaster):
			unknown = true
		default:
			unreachable = append(unreachable, err)
		}
	}
	switch {
	case outdated != "":
		return "", fmt.Errorf("redigo: the sentinels that answered still name %s, the primary before the last switch", outdated)
	case unknown:
		return "", fmt.Errorf("%w %q", ErrUnknownMaster, s.master)
	}
	if err := ctx.Err(); err != nil {
		unreachable = append(unreachable, err)
	}
	// %v: a network error of one sentinel must not read as a broken
	// connection to the primary, which callers try again at once.
	return "", fmt.Errorf("%w: %v", ErrNoSentinel, errors.Join(unreachable...))
}

// ask asks one sentinel where the primary is.
func (s *sentinels) ask(ctx context.Context, sentinel string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	conn, err := redis.DialContext(ctx, "tcp", sentinel, s.opts...)
	if err != nil {
		return "", fmt.Errorf("sentinel %s: %w", sentinel, err)
	}
	defer conn.Close()
	hostPort, err := redis.Strings(redis.DoContext(conn, ctx, "SENTINEL", "get-master-addr-by-name", s.master))
	switch {
	case errors.Is(err, redis.ErrNil):
		return "", fmt.Errorf("sentinel %s: %w", sentinel, ErrUnknownMaster)
	case err != nil:
		return "", fmt.Errorf("sentinel %s: %w", sentinel, err)
	case len(hostPort) != 2:
		return "", fmt.Errorf("sentinel %s: get-master-addr-by-name answered %d values, want 2", sentinel, len(hostPort))
	}
	return net.JoinHostPort(hostPort[0], hostPort[1]), nil
}

// ordered returns the sentinels' addresses in the order to ask them.
func (s *sentinels) ordered() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.addrs)
}

// first moves sentinel to the front of the list.
func (s *sentinels) first(sentinel string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i := slices.Index(s.addrs, sentinel); i > 0 {
		s.addrs = slices.Insert(slices.Delete(s.addrs, i, i+1), 0, sentinel)
	}
}

// checkRole fails unless conn, just dialed to addr, reaches a primary. A
// user not allowed to run ROLE skips the check from then on.
func (s *sentinels) checkRole(ctx context.Context, conn redis.Conn, addr string) error {
	if s.noRole.Load() {
		return nil
	}
	role, err := redis.Values(redis.DoContext(conn, ctx, "ROLE"))
	if e, ok := err.(redis.Error); ok && strings.HasPrefix(string(e), "NOPERM ") {
		s.noRole.Store(true)
		return nil
	}
	if err != nil {
		return fmt.Errorf("redis ROLE at %s: %w", addr, err)
	}
	if len(role) == 0 {
		return fmt.Errorf("redis ROLE at %s: empty reply", addr)
	}
	if name, _ := redis.String(role[0], nil); name != "master" {
		return fmt.Errorf("redis ROLE at %s: named master %q by a sentinel, but it is a %s", addr, s.master, name)
	}
	return nil
}

// watch follows the sentinels' +switch-master announcements for the
// master, moving p to each new address, until ctx ends. It subscribes on
// the first sentinel that accepts and subscribes again, on whichever
// accepts then, when that subscription drops.
func (s *sentinels) watch(ctx context.Context, p *primary) {
	wait := watchRetry
	for ctx.Err() == nil {
		if s.follow(ctx, p) {
			wait = watchRetry
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, watchRetryMax)
	}
}

// follow subscribes to switchChannel on one sentinel and moves p on each
// switch until the subscription drops or ctx ends. It reports whether it
// subscribed at all.
func (s *sentinels) follow(ctx context.Context, p *primary) bool {
	conn := s.subscribe(ctx)
	if conn == nil {
		return false
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()

	// A switch announced while no subscription was open is found by
	// asking; any later one arrives on the subscription.
	if addr, err := s.primaryAddr(ctx, p.stale); err == nil {
		p.moved(addr)
	}

	psc := redis.PubSubConn{Conn: conn}
	done := make(chan struct{})
	var pinger sync.WaitGroup
	pinger.Add(1)
	go func() {
		defer pinger.Done()
		tick := time.NewTicker(watchPing)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				if psc.Ping("") != nil {
					return
				}
			}
		}
	}()
	defer pinger.Wait()
	defer close(done)

	for {
		switch m := psc.Receive().(type) {
		case error:
			return true
		case redis.Message:
			if addr, ok := s.switched(m.Data); ok {
				p.moved(addr)
			}
		}
	}
}

// subscribe opens a subscription to switchChannel on the first sentinel
// that confirms it, or returns nil when none does: one that refuses it (an
// ACL user without the channel) is passed over like an unreachable one.
func (s *sentinels) subscribe(ctx context.Context) redis.Conn {
	opts := append(slices.Clip(s.opts), redis.DialReadTimeout(3*watchPing), redis.DialWriteTimeout(s.timeout))
	for _, sentinel := range s.ordered() {
		dialCtx, cancel := context.WithTimeout(ctx, s.timeout)
		conn, err := redis.DialContext(dialCtx, "tcp", sentinel, opts...)
		cancel()
		if err != nil {
			continue
		}
		if err := confirmSubscribe(conn); err != nil {
			_ = conn.Close()
			continue
		}
		return conn
	}
	return nil
}

// confirmSubscribe subscribes conn to switchChannel and waits for the
// sentinel to confirm.
func confirmSubscribe(conn redis.Conn) error {
	psc := redis.PubSubConn{Conn: conn}
	if err := psc.Subscribe(switchChannel); err != nil {
		return err
	}
	switch reply := psc.Receive().(type) {
	case error:
		return reply
	case redis.Subscription:
		if reply.Kind == "subscribe" && reply.Channel == switchChannel {
			return nil
		}
	}
	return errors.New("SUBSCRIBE " + switchChannel + " not confirmed")
}

// switched parses a +switch-master announcement and returns the new
// address when it is about the master.
func (s *sentinels) switched(data []byte) (string, bool) {
	f := strings.Fields(string(data))
	if len(f) != 5 || f[0] != s.master {
		return "", false
	}
	return net.JoinHostPort(f[3], f[4]), true
}

package redigo_test

import (
	"context"
	"crypto/tls"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"go.uber.org/goleak"

	"github.com/wa2genesys/connectorcache/adapters/redigo"
	"github.com/wa2genesys/connectorcache/internal/redistest"
)

const masterName = "cache"

// noFailover is the sentinels' down-after: long enough that a loaded
// machine's stall never starts a failover the test did not ask for.
const noFailover = time.Minute

// sentinelOptions returns Options for tr that find masterName through
// sentinels; the URL's host is never dialed.
func sentinelOptions(tr transport, sentinels ...string) redigo.Options {
	o := options("redis://primary.invalid:6379", tr)
	o.Sentinel = redigo.Sentinel{Master: masterName, Addrs: sentinels}
	return o
}

// checkOn fails t unless a write through c lands on srv.
func checkOn(t *testing.T, c *redigo.Client, srv *redistest.Server, opts ...redis.DialOption) {
	t.Helper()
	key := "on-" + strings.ReplaceAll(t.Name(), "/", "-")
	if err := c.Set(t.Context(), key, "v", time.Minute); err != nil {
		t.Fatalf("Set: %v", err)
	}
	if n, _ := redis.Int(srv.Do(t, opts, "EXISTS", key), nil); n != 1 {
		t.Fatalf("the write did not land on %s", srv.Addr())
	}
}

func TestClient_SentinelFindsThePrimary(t *testing.T) {
	primary := redistest.Start(t)
	sentinel := redistest.StartSentinel(t, redistest.SentinelOptions{Master: masterName, MasterAddr: primary.Addr(), DownAfter: noFailover})
	forEachTransport(t, func(t *testing.T, tr transport) {
		// The first sentinel listed is down: it is skipped.
		c := newClient(t, sentinelOptions(tr, redistest.ClosedAddr(t), sentinel.Addr()))
		checkOn(t, c, primary)
		if err := c.Ping(t.Context()); err != nil {
			t.Errorf("Ping: %v", err)
		}
		if got := c.Primary(); got.Addr != primary.Addr() || got.Failovers != 0 {
			t.Errorf("Primary() = %+v, want %s and no failover", got, primary.Addr())
		}
	})
}

// TestClient_SentinelLookupErrors: no sentinel reachable and sentinels
// that do not know the master are distinct errors.
func TestClient_SentinelLookupErrors(t *testing.T) {
	primary := redistest.Start(t)
	sentinel := redistest.StartSentinel(t, redistest.SentinelOptions{Master: "other", MasterAddr: primary.Addr(), DownAfter: noFailover})
	tests := []struct {
		name string
		give []string // the sentinels
		want error
	}{
		{name: "no sentinel reachable", give: []string{redistest.ClosedAddr(t), redistest.HungAddr(t)}, want: redigo.ErrNoSentinel},
		{name: "unknown master", give: []string{redistest.ClosedAddr(t), sentinel.Addr()}, want: redigo.ErrUnknownMaster},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			forEachTransport(t, func(t *testing.T, tr transport) {
				c := newClient(t, sentinelOptions(tr, tt.give...))
				err := c.Ping(t.Context())
				if !errors.Is(err, tt.want) {
					t.Fatalf("Ping error = %v, want %v", err, tt.want)
				}
				for _, other := range []error{redigo.ErrNoSentinel, redigo.ErrUnknownMaster} {
					if other != tt.want && errors.Is(err, other) {
						t.Errorf("Ping error = %v, is also %v", err, other)
					}
				}
			})
		})
	}
}

// TestClient_SentinelChecksTheRole: a server the sentinels name but which
// is a replica is refused at dial; for a user who may not run ROLE, the
// check is skipped and the replica's READONLY reply drops the connection.
func TestClient_SentinelChecksTheRole(t *testing.T) {
	primary := redistest.Start(t)
	replica := redistest.StartReplica(t, primary)
	replica.Do(t, nil, "ACL", "SETUSER", "norole", "on", ">norole-pw", "~*", "+@all", "-role")
	// A sentinel that monitors the replica under the name, as one left
	// behind by a failover would until it learns better.
	sentinel := redistest.StartSentinel(t, redistest.SentinelOptions{Master: masterName, MasterAddr: replica.Addr(), DownAfter: noFailover})
	forEachTransport(t, func(t *testing.T, tr transport) {
		t.Run("ROLE allowed", func(t *testing.T) {
			c := newClient(t, sentinelOptions(tr, sentinel.Addr()))
			err := c.Set(t.Context(), "k", "v", time.Minute)
			if err == nil || !strings.Contains(err.Error(), "is a slave") {
				t.Fatalf("Set error = %v, want the dial refused for the replica's role", err)
			}
		})
		t.Run("ROLE not allowed", func(t *testing.T) {
			o := sentinelOptions(tr, sentinel.Addr())
			o.URL = "redis://norole:norole-pw@primary.invalid:6379"
			c := newClient(t, o)
			if err := c.Set(t.Context(), "k", "v", time.Minute); !isReply(err, "READONLY") {
				t.Fatalf("Set error = %v, want READONLY from the replica", err)
			}
			if v, found, err := c.Get(t.Context(), "k"); err != nil || found {
				t.Errorf("Get after READONLY = %q, %v, %v; want a fresh connection answering a miss", v, found, err)
			}
		})
	})
}

// TestClient_SentinelSwitchIsFollowedWithoutACommand: a failover announced
// by the sentinels is followed with no command run, and the next command
// goes to the new primary.
func TestClient_SentinelSwitchIsFollowedWithoutACommand(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr transport) {
		primary := redistest.Start(t)
		replica := redistest.StartReplica(t, primary)
		sentinel := redistest.StartSentinel(t, redistest.SentinelOptions{Master: masterName, MasterAddr: primary.Addr(), DownAfter: noFailover})
		redistest.WaitSentinels(t, masterName, sentinel)

		var (
			mu    sync.Mutex
			moves []string
		)
		o := sentinelOptions(tr, sentinel.Addr())
		o.OnFailover = func(from, to string) {
			mu.Lock()
			defer mu.Unlock()
			moves = append(moves, from+" → "+to)
		}
		c := newClient(t, o)
		checkOn(t, c, primary)
		if n := clients(t, primary); n == 0 {
			t.Fatal("no connection open to the primary")
		}

		failover(t, sentinel, replica)
		deadline := time.Now().Add(30 * time.Second)
		for c.Primary().Addr != replica.Addr() {
			if time.Now().After(deadline) {
				t.Fatalf("Primary() = %+v 30s after the failover, want %s", c.Primary(), replica.Addr())
			}
			time.Sleep(10 * time.Millisecond)
		}
		// Closed by the client at once; the server sees it shortly after.
		for n := clients(t, primary); n != 0; n = clients(t, primary) {
			if time.Now().After(deadline) {
				t.Fatalf("%d connections still open to the former primary", n)
			}
			time.Sleep(10 * time.Millisecond)
		}
		mu.Lock()
		want := primary.Addr() + " → " + replica.Addr()
		if len(moves) != 1 || moves[0] != want {
			t.Errorf("OnFailover calls = %q, want [%s]", moves, want)
		}
		mu.Unlock()
		if got := c.Primary().Failovers; got != 1 {
			t.Errorf("Failovers = %d, want 1", got)
		}
		checkOn(t, c, replica)
	})
}

// clients counts the client connections open to srv, other than the
// sentinels' and the one asking.
func clients(t *testing.T, srv *redistest.Server) int {
	t.Helper()
	list, err := redis.String(srv.Read(t, nil, "CLIENT", "LIST", "TYPE", "normal"), nil)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for line := range strings.Lines(list) {
		if !strings.Contains(line, " name=sentinel-") && !strings.Contains(line, " cmd=client|list ") {
			n++
		}
	}
	return n
}

// failover has sentinel promote replica, asking again while the sentinel
// is not ready to (NOGOODSLAVE, INPROG).
func failover(t *testing.T, sentinel, replica *redistest.Server) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for replica.Role(t) != "master" {
		if time.Now().After(deadline) {
			t.Fatal("the replica was not promoted within 30s")
		}
		c, err := redis.Dial("tcp", sentinel.Addr(), redis.DialReadTimeout(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = c.Do("SENTINEL", "FAILOVER", masterName)
		c.Close()
		time.Sleep(100 * time.Millisecond)
	}
}

func TestClient_SentinelCredentialsAndTLS(t *testing.T) {
	const password = "Sentinel-Passw0rd"
	pki := redistest.NewPKI(t)
	primary := redistest.StartTLS(t, pki.CertFile, pki.KeyFile, pki.CAFile)
	sentinel := redistest.StartSentinel(t, redistest.SentinelOptions{
		Master: masterName, MasterAddr: primary.Addr(), Password: password, TLS: &pki, DownAfter: noFailover,
	})
	forEachTransport(t, func(t *testing.T, tr transport) {
		o := sentinelOptions(tr, sentinel.Addr())
		o.URL = "rediss://primary.invalid:6379"
		o.TLSConfig = &tls.Config{RootCAs: pki.Roots}

		t.Run("right password", func(t *testing.T) {
			o := o
			o.Sentinel.Password = password
			c := newClient(t, o)
			if err := c.Ping(t.Context()); err != nil {
				t.Fatalf("Ping: %v", err)
			}
			if got := c.Primary().Addr; got != primary.Addr() {
				t.Errorf("Primary().Addr = %s, want %s", got, primary.Addr())
			}
		})
		t.Run("wrong password", func(t *testing.T) {
			o := o
			o.Sentinel.Password = "Not-" + password
			c := newClient(t, o)
			err := c.Ping(context.Background())
			if !errors.Is(err, redigo.ErrNoSentinel) {
				t.Fatalf("Ping error = %v, want %v", err, redigo.ErrNoSentinel)
			}
			checkFailsWithoutSecrets(t, c, password, o.Sentinel.Password)
		})
		t.Run("plain TCP to the TLS sentinel", func(t *testing.T) {
			o := o
			o.URL = "redis://primary.invalid:6379"
			o.Sentinel.Password = password
			if err := newClient(t, o).Ping(t.Context()); !errors.Is(err, redigo.ErrNoSentinel) {
				t.Fatalf("Ping error = %v, want %v", err, redigo.ErrNoSentinel)
			}
		})
	})
}

// TestClient_SentinelCloseStopsEveryGoroutine: Close ends the watch of the
// sentinels, whether it is subscribed or waiting to try again.
func TestClient_SentinelCloseStopsEveryGoroutine(t *testing.T) {
	primary := redistest.Start(t)
	sentinel := redistest.StartSentinel(t, redistest.SentinelOptions{Master: masterName, MasterAddr: primary.Addr(), DownAfter: noFailover})
	tests := []struct {
		name     string
		give     []string // the sentinels
		wantPing bool
	}{
		{name: "subscribed", give: []string{sentinel.Addr()}, wantPing: true},
		{name: "no sentinel reachable", give: []string{redistest.ClosedAddr(t)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			forEachTransport(t, func(t *testing.T, tr transport) {
				ignore := goleak.IgnoreCurrent()
				c, err := redigo.NewClient(sentinelOptions(tr, tt.give...))
				if err != nil {
					t.Fatal(err)
				}
				if err := c.Ping(t.Context()); (err == nil) != tt.wantPing {
					t.Errorf("Ping error = %v, want success %v", err, tt.wantPing)
				}
				if tt.wantPing {
					waitSubscribed(t, sentinel)
				}
				if err := c.Close(); err != nil {
					t.Fatal(err)
				}
				goleak.VerifyNone(t, ignore)
			})
		})
	}
}

// waitSubscribed waits until a client subscribed to the switch
// announcements on sentinel (which has no PUBSUB command).
func waitSubscribed(t *testing.T, sentinel *redistest.Server) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		list, err := redis.String(sentinel.Do(t, nil, "CLIENT", "LIST"), nil)
		if err != nil {
			t.Fatalf("CLIENT LIST: %v", err)
		}
		if strings.Contains(list, " sub=1 ") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no subscription to +switch-master within 30s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

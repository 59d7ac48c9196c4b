package redigo_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/wa2genesys/connectorcache/internal/redistest"
)

// TestClient_NonPrimaryReplyRedials: a reply that only a server which is
// not a usable primary gives fails its command and closes the connection,
// so the next command dials again; any other error reply keeps it.
func TestClient_NonPrimaryReplyRedials(t *testing.T) {
	tests := []struct {
		give          string
		wantRedial    bool
		wantFailovers uint64
	}{
		{give: "READONLY You can't write against a read only replica.", wantRedial: true, wantFailovers: 1},
		{give: "LOADING Redis is loading the dataset in memory", wantRedial: true, wantFailovers: 1},
		{give: "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.", wantRedial: true, wantFailovers: 1},
		{give: "OOM command not allowed when used memory > 'maxmemory'."},
		{give: "ERR unknown command 'SET'"},
	}
	for _, tt := range tests {
		t.Run(strings.Fields(tt.give)[0], func(t *testing.T) {
			forEachTransport(t, func(t *testing.T, tr transport) {
				srv := newFirstConnServer(t, "-"+tt.give+"\r\n")
				o := options(srv.URL, tr)
				o.TestIdleAfter = time.Hour // no PING on borrow: the server answers only SET
				o.PipelineConns = 1         // both commands on one connection unless it is dropped
				c := newClient(t, o)
				ctx := context.Background()

				err := c.Set(ctx, "k", "v", time.Minute)
				if err == nil || !strings.Contains(err.Error(), tt.give) {
					t.Fatalf("first Set error = %v, want the %q reply", err, tt.give)
				}
				err = c.Set(ctx, "k", "v", time.Minute)
				if got := srv.Accepted(); tt.wantRedial {
					if err != nil || got != 2 {
						t.Errorf("second Set: error %v over %d connections, want nil over a second connection", err, got)
					}
				} else if err == nil || got != 1 {
					t.Errorf("second Set: error %v over %d connections, want the same reply on the same connection", err, got)
				}
				if got := c.Primary(); got.Failovers != tt.wantFailovers || got.Addr != strings.TrimPrefix(srv.URL, "redis://") {
					t.Errorf("Primary() = %+v, want %d failovers at the URL's address", got, tt.wantFailovers)
				}
			})
		})
	}
}

// firstConnServer answers every command on its first connection with one
// error reply, and +OK on every later connection.
type firstConnServer struct {
	URL      string
	mu       sync.Mutex
	accepted int
}

func newFirstConnServer(tb testing.TB, firstReply string) *firstConnServer {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s := &firstConnServer{URL: "redis://" + l.Addr().String()}
	redistest.Serve(tb, l, func(c net.Conn) {
		s.mu.Lock()
		s.accepted++
		reply := "+OK\r\n"
		if s.accepted == 1 {
			reply = firstReply
		}
		s.mu.Unlock()
		r := bufio.NewReader(c)
		for readCommand(r) == nil {
			if _, err := io.WriteString(c, reply); err != nil {
				return
			}
		}
	})
	return s
}

// Accepted reports how many connections the server accepted.
func (s *firstConnServer) Accepted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepted
}

// TestClient_FollowsEndpointFailover: behind one endpoint, the primary is
// demoted to a replica of the server the endpoint now leads to. The first
// write on the connections already open meets READONLY; every later one
// lands on the new primary, however many connections were open.
func TestClient_FollowsEndpointFailover(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr transport) {
		oldPrimary, newPrimary := redistest.Start(t), redistest.Start(t)
		endpoint := redistest.NewProxy(t, oldPrimary.Addr())
		c := newClient(t, options(endpoint.URL(), tr))
		ctx := context.Background()

		// Several connections open at once, all to the old primary.
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				if err := c.Set(ctx, fmt.Sprint("before-", i), "v", time.Minute); err != nil {
					t.Errorf("Set before the failover: %v", err)
				}
			})
		}
		wg.Wait()

		endpoint.Route(newPrimary.Addr())
		oldPrimary.Do(t, nil, "REPLICAOF", "127.0.0.1", fmt.Sprint(newPrimary.Port))

		err := c.Set(ctx, "after-0", "v", time.Minute)
		if !isReply(err, "READONLY", "LOADING") {
			t.Fatalf("first Set after the failover: %v, want READONLY (or LOADING) from the demoted server", err)
		}
		for i := 1; i <= 20; i++ {
			key := fmt.Sprint("after-", i)
			if err := c.Set(ctx, key, "v", time.Minute); err != nil {
				t.Fatalf("Set %d after the failover: %v", i, err)
			}
			if n, _ := redis.Int(newPrimary.Do(t, nil, "EXISTS", key), nil); n != 1 {
				t.Fatalf("%s is not on the new primary", key)
			}
		}
		if got := c.Primary(); got.Failovers != 1 || got.Addr != endpoint.Addr() {
			t.Errorf("Primary() = %+v, want 1 failover at %s", got, endpoint.Addr())
		}
	})
}

// isReply reports whether err carries a Redis error reply starting with
// one of kinds.
func isReply(err error, kinds ...string) bool {
	if err == nil {
		return false
	}
	for _, k := range kinds {
		if strings.Contains(err.Error(), ": "+k+" ") {
			return true
		}
	}
	return false
}

package redigo_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/wa2genesys/connectorcache/adapters/redigo"
	"github.com/wa2genesys/connectorcache/internal/redistest"
)

// The tests in this file are of the pipeline itself (batching, shared
// connections, reconnecting, shared dials) and run on it only; behaviour
// both transports share, the store contracts included, is tested on each
// in the other files.

// pipelineOptions returns options for url on the pipeline, over two shared
// connections.
func pipelineOptions(url string) redigo.Options {
	o := options(url, pipeline)
	o.PipelineConns = 2
	return o
}

// TestPipelineMatchesRepliesToCommands: hundreds of concurrent callers
// sharing two connections each get their own reply.
func TestPipelineMatchesRepliesToCommands(t *testing.T) {
	c := newClient(t, pipelineOptions(redistest.SharedURL(t)))
	base := testKey(t)
	const callers, each = 200, 20

	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for g := range callers {
		wg.Go(func() {
			for i := range each {
				key, val := fmt.Sprintf("%s:%d:%d", base, g, i), fmt.Sprintf("v-%d-%d", g, i)
				if err := c.Set(t.Context(), key, val, time.Minute); err != nil {
					errs <- err
					return
				}
				got, found, err := c.Get(t.Context(), key)
				if err != nil || !found || got != val {
					errs <- fmt.Errorf("Get(%s) = %q, %v, %v; want %q", key, got, found, err, val)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := c.Stats().Active; got < 1 || got > 2 {
		t.Errorf("Stats().Active = %d, want 1 or 2 shared connections", got)
	}
}

// TestPipelineErrorReplyIsThatCommandsAnswer: a Redis error reply fails
// its own command only; the connection goes on.
func TestPipelineErrorReplyIsThatCommandsAnswer(t *testing.T) {
	c := newClient(t, pipelineOptions(redistest.SharedURL(t)))
	key := testKey(t)
	if err := c.Set(t.Context(), key, "v", time.Minute); err != nil {
		t.Fatal(err)
	}
	// GET of a hash is a WRONGTYPE error reply.
	raw := rawConn(t)
	if _, err := raw.Do("HSET", key+":hash", "f", "v"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Get(t.Context(), key+":hash"); err == nil {
		t.Fatal("GET of a hash succeeded, want WRONGTYPE")
	}
	if got, found, err := c.Get(t.Context(), key); err != nil || !found || got != "v" {
		t.Fatalf("Get after an error reply = %q, %v, %v; want v", got, found, err)
	}
	if got := c.Stats().Active; got == 0 {
		t.Error("the error reply closed the connection")
	}
}

// TestPipelineReconnectsAfterTheServerRestarts: commands on connections
// broken by a restart fail or are retried, and the client reconnects by
// itself.
func TestPipelineReconnectsAfterTheServerRestarts(t *testing.T) {
	srv := redistest.Start(t)
	c := newClient(t, pipelineOptions(srv.URL()))
	for range 4 {
		if err := c.Ping(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	srv.Restart(t)
	// Both connections were cut by the restart: the first command on each
	// is retried on a fresh one.
	for i := range 4 {
		if err := c.Ping(t.Context()); err != nil {
			t.Fatalf("Ping %d after the restart: %v", i, err)
		}
	}
	if err := c.Set(t.Context(), "k", "v", time.Minute); err != nil {
		t.Fatal(err)
	}
}

// TestPipelineCloseStopsEveryGoroutine: Close waits for the writers and
// readers, and commands after it fail.
func TestPipelineCloseStopsEveryGoroutine(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	c, err := redigo.NewClient(pipelineOptions(redistest.SharedURL(t)))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() { _ = c.Ping(t.Context()) })
	}
	wg.Wait()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Ping(t.Context()); err == nil {
		t.Error("Ping after Close succeeded")
	}
	goleak.VerifyNone(t, ignore)
}

// TestPipelineHonoursTheCallersDeadline: on a server that never answers, a
// caller with a short deadline returns at it, before the read timeout.
func TestPipelineHonoursTheCallersDeadline(t *testing.T) {
	url := "redis://" + redistest.HungAddr(t)
	o := pipelineOptions(url)
	o.ReadTimeout = time.Minute
	c := newClient(t, o)
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := c.Ping(ctx); err == nil {
		t.Fatal("Ping on a hung server succeeded")
	}
	if took := time.Since(start); took > 200*time.Millisecond+margin {
		t.Errorf("Ping returned after %v, want about the 200ms deadline", took)
	}
}

// TestPipelineCallersShareOneDial: callers arriving while a connection is
// being dialed wait for that dial, not one dial after another: against a
// server that hangs in AUTH, every caller fails within one dial timeout.
func TestPipelineCallersShareOneDial(t *testing.T) {
	url := "redis://:some-password@" + redistest.HungAddr(t)
	o := pipelineOptions(url)
	o.DialTimeout, o.ReadTimeout, o.WriteTimeout = shortTimeout, shortTimeout, shortTimeout
	c := newClient(t, o)

	const callers = 16 // one dial after another would take 16 dial timeouts
	var wg sync.WaitGroup
	took := make([]time.Duration, callers)
	for i := range callers {
		wg.Go(func() {
			start := time.Now()
			if err := c.Ping(context.Background()); err == nil {
				t.Error("Ping on a hung server succeeded")
			}
			took[i] = time.Since(start)
		})
	}
	wg.Wait()
	for i, d := range took {
		if d > shortTimeout+margin {
			t.Errorf("caller %d failed after %v, want within the %v dial timeout (+%v)", i, d, shortTimeout, margin)
		}
	}
}

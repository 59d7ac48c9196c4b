package redigo

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/wa2genesys/connectorcache/internal/redistest"
)

// dialTracked dials srv and has p track the connection as one to addr.
func dialTracked(t *testing.T, p *primary, srv *redistest.Server, addr string) *serverConn {
	t.Helper()
	return finishDial(t, p, srv, addr, p.begin())
}

// finishDial is the end of a dial that began with ticket: it dials srv and
// has p track the connection as one to addr.
func finishDial(t *testing.T, p *primary, srv *redistest.Server, addr string, ticket dialTicket) *serverConn {
	t.Helper()
	conn, err := redis.Dial("tcp", srv.Addr(), redis.DialReadTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	c, err := p.dialed(conn, addr, ticket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func checkOpen(t *testing.T, what string, c *serverConn, want bool) {
	t.Helper()
	_, err := c.DoContext(t.Context(), "PING")
	if open := err == nil; open != want {
		t.Errorf("%s: PING error %v, want open %v", what, err, want)
	}
}

// TestPrimary_MovedClosesConnectionsToOtherAddresses: when Sentinel names a
// new primary, every connection to another address is closed at once,
// and the failover is counted once. The connections all reach one server;
// the addresses they were dialed for are what counts.
func TestPrimary_MovedClosesConnectionsToOtherAddresses(t *testing.T) {
	srv := redistest.Start(t)
	var moves []string
	p := newPrimary("", true, func(from, to string) { moves = append(moves, from+" → "+to) })
	old1 := dialTracked(t, p, srv, "10.0.0.1:6379")
	old2 := dialTracked(t, p, srv, "10.0.0.1:6379")
	if len(moves) != 0 {
		t.Fatalf("OnFailover calls = %q on the first address, want none", moves)
	}

	p.moved("10.0.0.2:6379")
	checkOpen(t, "first connection to the former primary", old1, false)
	checkOpen(t, "second connection to the former primary", old2, false)
	current := dialTracked(t, p, srv, "10.0.0.2:6379")
	p.moved("10.0.0.2:6379") // announced again: nothing to do
	checkOpen(t, "connection to the new primary", current, true)

	if got := p.stats(); got.Addr != "10.0.0.2:6379" || got.Failovers != 1 {
		t.Errorf("stats = %+v, want the new address after 1 failover", got)
	}
	if len(moves) != 1 || moves[0] != "10.0.0.1:6379 → 10.0.0.2:6379" {
		t.Errorf("OnFailover calls = %q, want one, from the former to the new", moves)
	}
}

// TestPrimary_StaleLookupIsRefused: a dial that asked the sentinels before
// they announced a new primary, and reached the former one, is refused.
func TestPrimary_StaleLookupIsRefused(t *testing.T) {
	srv := redistest.Start(t)
	p := newPrimary("", true, nil)
	dialTracked(t, p, srv, "10.0.0.1:6379")
	ticket := p.begin() // the dial asks the sentinels...
	p.moved("10.0.0.2:6379")
	conn, err := redis.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := p.dialed(conn, "10.0.0.1:6379", ticket); !errors.Is(err, errMovedDuringDial) {
		t.Fatalf("a dial to the former primary, begun before the switch: error %v, want %v", err, errMovedDuringDial)
	}
	// Later lookups pass over a sentinel still naming the former primary.
	if !p.stale("10.0.0.1:6379") || p.stale("10.0.0.2:6379") {
		t.Errorf("stale(former) = %v, stale(current) = %v; want true, false", p.stale("10.0.0.1:6379"), p.stale("10.0.0.2:6379"))
	}
	if got := p.stats().Addr; got != "10.0.0.2:6379" {
		t.Errorf("address = %s after the refused dial, want the new primary's", got)
	}
}

// TestPrimary_DemotionClosesEveryConnectionToTheAddress: behind an
// endpoint, one non-primary reply closes every connection to it, counted
// as one failover; a reply on a connection dialed before that is part of
// the same one.
func TestPrimary_DemotionClosesEveryConnectionToTheAddress(t *testing.T) {
	srv := redistest.Start(t)
	var moves []string
	p := newPrimary("endpoint:6379", false, func(from, to string) { moves = append(moves, from+" → "+to) })
	conns := []*serverConn{
		dialTracked(t, p, srv, "endpoint:6379"),
		dialTracked(t, p, srv, "endpoint:6379"),
		dialTracked(t, p, srv, "endpoint:6379"),
	}
	slow := p.begin()   // a dial under way, to the demoted server
	p.demoted(conns[1]) // not the newest: the newest reaches the same server
	for i, c := range conns {
		checkOpen(t, fmt.Sprint("connection ", i), c, false)
	}
	p.demoted(conns[2])
	p.demoted(finishDial(t, p, srv, "endpoint:6379", slow))
	fresh := dialTracked(t, p, srv, "endpoint:6379")
	checkOpen(t, "connection dialed after the demotion", fresh, true)
	if got := p.stats(); got.Failovers != 1 || len(moves) != 1 || moves[0] != "endpoint:6379 → endpoint:6379" {
		t.Errorf("stats %+v, OnFailover calls %q; want 1 failover, reported once", got, moves)
	}
}

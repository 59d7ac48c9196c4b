package redigo

import (
	"strings"
	"testing"
	"time"

	"github.com/wa2genesys/connectorcache/internal/redistest"
)

// TestSentinels_PassOverAStaleAnswer: a sentinel naming what the client
// knows is the former primary is passed over for the next one, and stays
// behind it.
func TestSentinels_PassOverAStaleAnswer(t *testing.T) {
	former, current := redistest.Start(t), redistest.Start(t)
	// Two sentinels that disagree, as one that has not heard of a switch
	// yet disagrees with the others.
	behind := redistest.StartSentinel(t, redistest.SentinelOptions{Master: "m", MasterAddr: former.Addr(), DownAfter: time.Minute})
	ahead := redistest.StartSentinel(t, redistest.SentinelOptions{Master: "m", MasterAddr: current.Addr(), DownAfter: time.Minute})
	s := newSentinels(Sentinel{Master: "m", Addrs: []string{behind.Addr(), ahead.Addr()}}, Options{}, false)
	stale := func(addr string) bool { return addr == former.Addr() }

	for range 2 {
		addr, err := s.primaryAddr(t.Context(), stale)
		if err != nil || addr != current.Addr() {
			t.Fatalf("primaryAddr = %s, %v; want %s", addr, err, current.Addr())
		}
	}
	if got := s.addrs; got[0] != ahead.Addr() {
		t.Errorf("sentinels in the order %v, want the one that answered first", got)
	}
	noneFresh := func(string) bool { return true }
	if _, err := s.primaryAddr(t.Context(), noneFresh); err == nil || !strings.Contains(err.Error(), "still name") {
		t.Errorf("primaryAddr with only stale answers: error %v, want one saying the sentinels still name the former primary", err)
	}
}

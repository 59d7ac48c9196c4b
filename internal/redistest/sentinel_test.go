package redistest_test

import (
	"crypto/tls"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/wa2genesys/connectorcache/internal/redistest"
)

const master = "mymaster"

// failoverBound is a generous bound on a failover that takes a few seconds
// on an idle machine.
const failoverBound = 60 * time.Second

// masterAddr asks s where master's primary is, as clients do.
func masterAddr(t *testing.T, s *redistest.Server, opts ...redis.DialOption) string {
	t.Helper()
	reply, err := redis.Strings(s.Do(t, opts, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", master), nil)
	if err != nil || len(reply) != 2 {
		t.Fatalf("SENTINEL GET-MASTER-ADDR-BY-NAME on %s = %q, %v", s.Addr(), reply, err)
	}
	return net.JoinHostPort(reply[0], reply[1])
}

// waitMasterAddr waits until s names want as master's primary.
func waitMasterAddr(t *testing.T, s *redistest.Server, want string, deadline time.Time) {
	t.Helper()
	for got := masterAddr(t, s); got != want; got = masterAddr(t, s) {
		if time.Now().After(deadline) {
			t.Fatalf("sentinel %s names %s, want %s", s.Addr(), got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// failover asks s to fail master over, unless one is in progress.
func failover(t *testing.T, s *redistest.Server) {
	t.Helper()
	c, err := redis.Dial("tcp", s.Addr(), redis.DialReadTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Do("SENTINEL", "FAILOVER", master)
	// NOGOODSLAVE: the sentinel has yet to see the replica in sync.
	if err != nil && !strings.HasPrefix(err.Error(), "INPROG") && !strings.HasPrefix(err.Error(), "NOGOODSLAVE") {
		t.Fatalf("SENTINEL FAILOVER: %v", err)
	}
}

func TestSentinelFailover(t *testing.T) {
	t.Parallel()
	primary := redistest.Start(t)
	replica := redistest.StartReplica(t, primary)
	var sentinels []*redistest.Server
	for range 3 {
		sentinels = append(sentinels, redistest.StartSentinel(t, redistest.SentinelOptions{
			Master: master, MasterAddr: primary.Addr(), Quorum: 2, DownAfter: time.Second,
		}))
	}
	if got := replica.Role(t); got != "slave" {
		t.Fatalf("replica ROLE = %q, want slave", got)
	}
	for _, s := range sentinels {
		if got := s.Role(t); got != "sentinel" {
			t.Errorf("sentinel %s ROLE = %q, want sentinel", s.Addr(), got)
		}
		if got := masterAddr(t, s); got != primary.Addr() {
			t.Errorf("sentinel %s names %s, want the primary %s", s.Addr(), got, primary.Addr())
		}
	}
	waited := time.Now()
	redistest.WaitSentinels(t, master, sentinels...)
	t.Logf("WaitSentinels: %v", time.Since(waited))

	// A forced failover that times out is not tried again: ask until the
	// sentinel names the replica.
	start := time.Now()
	deadline := start.Add(failoverBound)
	for masterAddr(t, sentinels[0]) != replica.Addr() {
		if time.Now().After(deadline) {
			t.Fatalf("no failover within %v", failoverBound)
		}
		failover(t, sentinels[0])
		time.Sleep(100 * time.Millisecond)
	}
	switched := time.Since(start)
	for _, s := range sentinels {
		waitMasterAddr(t, s, replica.Addr(), deadline)
	}
	if got := replica.Role(t); got != "master" {
		t.Errorf("promoted replica ROLE = %q, want master", got)
	}
	t.Logf("failover: %v until the sentinel named the replica, %v until all did", switched, time.Since(start))

	// A sentinel restarted comes back from the configuration it rewrote.
	sentinels[1].Restart(t)
	if got := sentinels[1].Role(t); got != "sentinel" {
		t.Errorf("restarted sentinel ROLE = %q, want sentinel", got)
	}
	if got := masterAddr(t, sentinels[1]); got != replica.Addr() {
		t.Errorf("restarted sentinel names %s, want the promoted replica %s", got, replica.Addr())
	}
}

func TestStartSentinel_Auth(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		givePrimary []string
		give        redistest.SentinelOptions
	}{
		{
			name:        "requirepass",
			givePrimary: []string{"--requirepass", "primary-pw"},
			give:        redistest.SentinelOptions{MasterPassword: "primary-pw", Password: "sentinel-pw"},
		},
		{
			name: "ACL users",
			givePrimary: []string{"--user", "default", "off",
				"--user", "watcher", "on", ">primary-pw", "~*", "&*", "+@all"},
			give: redistest.SentinelOptions{
				MasterUser: "watcher", MasterPassword: "primary-pw",
				Username: "admin", Password: "sentinel-pw",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			primary := redistest.Start(t, tt.givePrimary...)
			o := tt.give
			o.Master, o.MasterAddr = master, primary.Addr()
			sentinels := []*redistest.Server{redistest.StartSentinel(t, o), redistest.StartSentinel(t, o)}
			// The sentinels hear from the primary, with MasterUser and
			// MasterPassword, and from each other, with their own.
			redistest.WaitSentinels(t, master, sentinels...)
			// It comes back protected from the configuration it rewrote.
			s := sentinels[0]
			s.Restart(t)

			c, err := redis.Dial("tcp", s.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.Do("SENTINEL", "GET-MASTER-ADDR-BY-NAME", master); err == nil || !strings.HasPrefix(err.Error(), "NOAUTH") {
				t.Errorf("without AUTH: err = %v, want NOAUTH", err)
			}
			if _, err := redis.Dial("tcp", s.Addr(), redis.DialUsername(o.Username), redis.DialPassword("wrong")); err == nil {
				t.Error("AUTH with a wrong password succeeded")
			}
			auth := []redis.DialOption{redis.DialUsername(o.Username), redis.DialPassword(o.Password)}
			if got := masterAddr(t, s, auth...); got != primary.Addr() {
				t.Errorf("with AUTH: names %s, want %s", got, primary.Addr())
			}
		})
	}
}

func TestStartSentinel_TLS(t *testing.T) {
	t.Parallel()
	pki := redistest.NewPKI(t)
	primary := redistest.StartTLS(t, pki.CertFile, pki.KeyFile, pki.CAFile, "--requirepass", "primary-pw")
	o := redistest.SentinelOptions{Master: master, MasterAddr: primary.Addr(), MasterPassword: "primary-pw", TLS: &pki}
	sentinels := []*redistest.Server{redistest.StartSentinel(t, o), redistest.StartSentinel(t, o)}
	// They reach the primary and each other over TLS.
	redistest.WaitSentinels(t, master, sentinels...)
	sentinels[0].Restart(t)

	tlsOpts := []redis.DialOption{redis.DialUseTLS(true),
		redis.DialTLSConfig(&tls.Config{RootCAs: pki.Roots, MinVersion: tls.VersionTLS12})}
	c, err := redis.Dial("tcp", sentinels[0].Addr(), tlsOpts...)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	reply, err := redis.Strings(c.Do("SENTINEL", "GET-MASTER-ADDR-BY-NAME", master))
	if err != nil || len(reply) != 2 || net.JoinHostPort(reply[0], reply[1]) != primary.Addr() {
		t.Errorf("over TLS: SENTINEL GET-MASTER-ADDR-BY-NAME = %q, %v; want %s", reply, err, primary.Addr())
	}

	// Plain TCP is not served.
	plain, err := redis.Dial("tcp", sentinels[0].Addr(), redis.DialReadTimeout(30*time.Second))
	if err == nil {
		_, err = plain.Do("PING")
		plain.Close()
	}
	if err == nil {
		t.Error("PING over plain TCP succeeded")
	}
}

func TestStartSentinel_Restart(t *testing.T) {
	t.Parallel()
	primary := redistest.Start(t)
	s := redistest.StartSentinel(t, redistest.SentinelOptions{Master: master, MasterAddr: primary.Addr()})
	port := s.Port
	for range 2 {
		s.Restart(t)
		if s.Port != port {
			t.Fatalf("restarted on port %d, want %d", s.Port, port)
		}
		if got := masterAddr(t, s); got != primary.Addr() {
			t.Errorf("restarted sentinel names %s, want %s", got, primary.Addr())
		}
	}
	if reply := s.Do(t, nil, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", "other"); reply != nil {
		t.Errorf("unknown master: %v, want nil", reply)
	}
}

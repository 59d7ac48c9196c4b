package redistest

import (
	"cmp"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
)

// SentinelOptions configure a sentinel started by [StartSentinel]. Master
// and the credentials must be single words of printable ASCII without
// quotes or backslashes: sentinel writes them back unquoted when it
// rewrites its configuration file.
type SentinelOptions struct {
	// Master is the name the sentinel monitors the primary under, such as
	// "mymaster". Required.
	Master string
	// MasterAddr is the primary's host:port, the host an IP address, as
	// [Server.Addr] gives it. Required.
	MasterAddr string
	// Quorum is how many sentinels must agree that the primary is down
	// before one of them starts a failover. Zero means 1.
	Quorum int
	// DownAfter is how long the primary, a replica or another sentinel may
	// go without a valid reply before the sentinel thinks it down
	// (down-after-milliseconds). Zero means 1s.
	DownAfter time.Duration
	// FailoverTimeout is failover-timeout: a failover whose replica does
	// not confirm its promotion within it is given up, and the sentinel
	// waits twice as long before it tries this primary again; a server
	// that follows the wrong primary for that long is told to follow the
	// right one. Zero means 3s; Redis's own default is 3 minutes.
	FailoverTimeout time.Duration
	// MasterUser and MasterPassword authenticate the sentinel to the
	// primary and its replicas (auth-user, auth-pass). An empty
	// MasterPassword means they require none; an empty MasterUser means
	// the default user.
	MasterUser, MasterPassword string
	// Username and Password protect the sentinel itself. Password alone is
	// its requirepass. With Username, clients authenticate as that user,
	// which may run every command, and the default user is off. Sentinels
	// authenticate to each other with the same credentials
	// (sentinel-user, sentinel-pass), so every sentinel of a topology
	// needs the same. An empty Password means no authentication; Username
	// needs a Password.
	Username, Password string
	// TLS, when not nil, makes the sentinel listen only with TLS, with
	// TLS.CertFile and TLS.KeyFile, and speak TLS, trusting TLS.CAFile,
	// to the primary, its replicas and the other sentinels: they must
	// speak TLS too, as [StartTLS] servers do. Nil means plain TCP.
	// [Server.Do] trusts TLS.Roots.
	TLS *PKI
}

// StartSentinel starts a Redis Sentinel (redis-server in sentinel mode) on
// a free port, monitoring o.MasterAddr as o.Master, and stops it when tb
// ends. Its folder holds the sentinel.conf that it rewrites as it learns
// the topology, so that [Server.Restart] brings it back knowing the
// primary it knew last. [Server.Do], [Server.Role] and [WaitSentinels]
// reach it with o's credentials and TLS.
func StartSentinel(tb testing.TB, o SentinelOptions) *Server {
	tb.Helper()
	conf, err := o.config()
	if err != nil {
		tb.Fatal(err)
	}
	dir := tb.TempDir()
	confFile := filepath.Join(dir, "sentinel.conf")
	if err := os.WriteFile(confFile, []byte(conf), 0o600); err != nil {
		tb.Fatal(err)
	}
	sp := spec{lead: []string{confFile, "--sentinel"}, ready: sentinelReady}
	if o.TLS != nil {
		sp.tls = true
		sp.args = append(tlsArgs(o.TLS.CertFile, o.TLS.KeyFile, o.TLS.CAFile), "--tls-replication", "yes")
	}
	s, err := start(dir, sp)
	if err != nil {
		tb.Fatal(err)
	}
	s.dial = o.dialOptions()
	tb.Cleanup(s.Stop)
	return s
}

// config is the sentinel.conf for o. The port and the other common
// settings are on the command line, which takes precedence over the file.
func (o SentinelOptions) config() (string, error) {
	if o.Master == "" {
		return "", errors.New("redistest: SentinelOptions.Master is empty")
	}
	for _, f := range []struct{ name, v string }{
		{"Master", o.Master}, {"MasterUser", o.MasterUser}, {"MasterPassword", o.MasterPassword},
		{"Username", o.Username}, {"Password", o.Password},
	} {
		if err := checkWord(f.name, f.v); err != nil {
			return "", err
		}
	}
	host, port, err := net.SplitHostPort(o.MasterAddr)
	if err == nil && net.ParseIP(host) == nil {
		err = fmt.Errorf("host %q is not an IP address", host)
	}
	if _, perr := strconv.ParseUint(port, 10, 16); err == nil && perr != nil {
		err = fmt.Errorf("port %q: %w", port, perr)
	}
	if err != nil {
		return "", fmt.Errorf("redistest: SentinelOptions.MasterAddr: %w", err)
	}
	if o.Username != "" && o.Password == "" {
		return "", fmt.Errorf("redistest: SentinelOptions.Username %q without a Password", o.Username)
	}
	if o.MasterUser != "" && o.MasterPassword == "" {
		return "", fmt.Errorf("redistest: SentinelOptions.MasterUser %q without a MasterPassword", o.MasterUser)
	}
	quorum := cmp.Or(o.Quorum, 1)
	downAfter := cmp.Or(o.DownAfter, time.Second)
	failoverTimeout := cmp.Or(o.FailoverTimeout, 3*time.Second)

	lines := []string{
		fmt.Sprintf("sentinel monitor %s %s %s %d", o.Master, host, port, quorum),
		fmt.Sprintf("sentinel down-after-milliseconds %s %d", o.Master, max(1, downAfter.Milliseconds())),
		fmt.Sprintf("sentinel failover-timeout %s %d", o.Master, max(1, failoverTimeout.Milliseconds())),
	}
	if o.MasterPassword != "" {
		lines = append(lines, fmt.Sprintf("sentinel auth-pass %s %s", o.Master, o.MasterPassword))
	}
	if o.MasterUser != "" {
		lines = append(lines, fmt.Sprintf("sentinel auth-user %s %s", o.Master, o.MasterUser))
	}
	switch {
	case o.Username != "":
		lines = append(lines,
			"user default off",
			fmt.Sprintf("user %s on >%s ~* &* +@all", o.Username, o.Password),
			"sentinel sentinel-user "+o.Username,
			"sentinel sentinel-pass "+o.Password)
	case o.Password != "":
		lines = append(lines,
			"requirepass "+o.Password,
			"sentinel sentinel-pass "+o.Password)
	}
	return strings.Join(lines, "\n") + "\n", nil
}

// dialOptions are the options that reach a sentinel started with o.
func (o SentinelOptions) dialOptions() []redis.DialOption {
	var opts []redis.DialOption
	if o.Username != "" {
		opts = append(opts, redis.DialUsername(o.Username))
	}
	if o.Password != "" {
		opts = append(opts, redis.DialPassword(o.Password))
	}
	if o.TLS != nil {
		opts = append(opts, redis.DialUseTLS(true),
			redis.DialTLSConfig(&tls.Config{RootCAs: o.TLS.Roots, MinVersion: tls.VersionTLS12}))
	}
	return opts
}

// checkWord returns an error naming field when v is not one word of
// printable ASCII without quotes or backslashes: sentinel writes the
// master's name and the credentials into its configuration file unquoted,
// and could not read them back.
func checkWord(field, v string) error {
	for i := range len(v) {
		if c := v[i]; c <= ' ' || c >= 0x7f || c == '"' || c == '\'' || c == '\\' {
			// The byte itself is not shown: the field may be a password.
			return fmt.Errorf("redistest: SentinelOptions.%s: byte %d is a space, a quote, a backslash or not printable ASCII", field, i)
		}
	}
	return nil
}

// StartReplica starts a redis-server, as [Start] does with args, that
// replicates primary, and waits until its first sync with primary is done.
// The primary must speak plain TCP; for one that requires a password, pass
// "--masterauth" (and "--masteruser") in args.
func StartReplica(tb testing.TB, primary *Server, args ...string) *Server {
	tb.Helper()
	s := Start(tb, slices.Concat([]string{"--replicaof", "127.0.0.1", strconv.Itoa(primary.Port)}, args)...)
	s.mu.Lock()
	done := s.done
	s.mu.Unlock()
	if err := s.awaitLog(0, "MASTER <-> REPLICA sync: Finished with success", done); err != nil {
		tb.Fatalf("redistest: replica %s of %s: %v", s.Addr(), primary.Addr(), err)
	}
	return s
}

// Role returns the first element of s's ROLE reply: "master", "slave" or
// "sentinel". It dials s as [Server.Read] does with opts, and fails tb if
// s does not answer.
func (s *Server) Role(tb testing.TB, opts ...redis.DialOption) string {
	tb.Helper()
	reply, err := redis.Values(s.Read(tb, opts, "ROLE"), nil)
	if err != nil || len(reply) == 0 {
		tb.Fatalf("redistest: ROLE on %s: %v, %v", s.Addr(), reply, err)
	}
	role, err := redis.String(reply[0], nil)
	if err != nil {
		tb.Fatalf("redistest: ROLE on %s: %v", s.Addr(), err)
	}
	return role
}

// discoverTimeout bounds how long sentinels may take to find each other
// through the primary, where they announce themselves every 2s.
const discoverTimeout = 30 * time.Second

// WaitSentinels waits until each of sentinels, all monitoring the primary
// named master, is ready to agree with the others that the primary is down
// and to promote a replica: it has had INFO from the primary; it knows
// every other one of sentinels, which answers its PINGs; and every replica
// the primary told it of answers it and reports its link to the primary
// up. It fails tb after 30s, as when one of those replicas is down.
func WaitSentinels(tb testing.TB, master string, sentinels ...*Server) {
	tb.Helper()
	deadline := time.Now().Add(discoverTimeout)
	for _, s := range sentinels {
		for {
			missing := s.unready(tb, master, sentinels)
			if missing == "" {
				break
			}
			if time.Now().After(deadline) {
				tb.Fatalf("redistest: sentinel %s not ready within %v: %s", s.Addr(), discoverTimeout, missing)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// unready says what sentinel s is still missing to be ready for a
// failover of master among sentinels, or "" when nothing is.
func (s *Server) unready(tb testing.TB, master string, sentinels []*Server) string {
	tb.Helper()
	primary := s.sentinelMaps(tb, "MASTER", master)
	if len(primary) != 1 || primary[0]["runid"] == "" {
		return "no INFO from the primary yet"
	}
	known := make(map[string]map[string]string) // by port
	for _, m := range s.sentinelMaps(tb, "SENTINELS", master) {
		known[m["port"]] = m
	}
	for _, other := range sentinels {
		if other == s {
			continue
		}
		// No PING in flight since the link was made: the other one has
		// answered one, so it accepts this one's credentials.
		m, ok := known[strconv.Itoa(other.Port)]
		if !ok || !healthy(m["flags"]) || m["last-ping-sent"] != "0" {
			return fmt.Sprintf("sentinel %s: known %v, flags %q, last-ping-sent %q", other.Addr(), ok, m["flags"], m["last-ping-sent"])
		}
	}
	for _, m := range s.sentinelMaps(tb, "REPLICAS", master) {
		if !healthy(m["flags"]) || m["master-link-status"] != "ok" {
			return fmt.Sprintf("replica %s:%s: flags %q, master-link-status %q", m["ip"], m["port"], m["flags"], m["master-link-status"])
		}
	}
	return ""
}

// healthy reports whether an instance's flags, as SENTINEL lists them,
// say it is connected and up.
func healthy(flags string) bool {
	for f := range strings.SplitSeq(flags, ",") {
		switch f {
		case "disconnected", "s_down", "o_down":
			return false
		}
	}
	return true
}

// sentinelMaps runs SENTINEL sub master on s: the one instance (MASTER) or
// the list of them (SENTINELS, REPLICAS) it answers, as maps.
func (s *Server) sentinelMaps(tb testing.TB, sub, master string) []map[string]string {
	tb.Helper()
	reply := s.Do(tb, nil, "SENTINEL", sub, master)
	if sub == "MASTER" {
		reply = []any{reply}
	}
	items, err := redis.Values(reply, nil)
	if err != nil {
		tb.Fatalf("redistest: SENTINEL %s on %s: %v", sub, s.Addr(), err)
	}
	maps := make([]map[string]string, 0, len(items))
	for _, item := range items {
		m, err := redis.StringMap(item, nil)
		if err != nil {
			tb.Fatalf("redistest: SENTINEL %s on %s: %v", sub, s.Addr(), err)
		}
		maps = append(maps, m)
	}
	return maps
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/gomodule/redigo/redis"
)

// env is what every measurement shares: the options, the server and an
// admin connection to it.
type env struct {
	o     options
	srv   *server
	admin redis.Conn
	ids   *ids
	log   io.Writer
}

func newEnv(o options, srv *server, progress io.Writer) (*env, error) {
	// FLUSHALL of a few million keys takes a while: a long read timeout.
	admin, err := redis.Dial("tcp", srv.addr, redis.DialReadTimeout(time.Minute), redis.DialWriteTimeout(5*time.Second))
	if err != nil {
		return nil, fmt.Errorf("admin connection: %w", err)
	}
	return &env{o: o, srv: srv, admin: admin, ids: &ids{}, log: progress}, nil
}

func (e *env) progress(format string, args ...any) {
	fmt.Fprintf(e.log, "bench: "+format+"\n", args...)
}

// flush empties Redis synchronously, between measurements, so that memory
// does not grow over the run and no measurement pays for another's keys.
func (e *env) flush() error {
	if _, err := e.admin.Do("FLUSHALL", "SYNC"); err != nil {
		return fmt.Errorf("FLUSHALL: %w", err)
	}
	return nil
}

// clients is the number of connections open to Redis, the admin one
// excluded.
func (e *env) clients() (int, error) { return otherClients(e.admin) }

// otherClients is the number of connections open to the server of admin,
// admin excluded.
func otherClients(admin redis.Conn) (int, error) {
	info, err := redis.String(admin.Do("INFO", "clients"))
	if err != nil {
		return 0, fmt.Errorf("INFO clients: %w", err)
	}
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "connected_clients:"); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				return 0, fmt.Errorf("INFO clients: connected_clients %q", v)
			}
			return n - 1, nil
		}
	}
	return 0, fmt.Errorf("INFO clients: no connected_clients")
}

// commandCalls is how many times Redis ran cmd (lower case) since its
// statistics were last reset, from INFO commandstats.
func (e *env) commandCalls(cmd string) (uint64, error) {
	info, err := redis.String(e.admin.Do("INFO", "commandstats"))
	if err != nil {
		return 0, fmt.Errorf("INFO commandstats: %w", err)
	}
	for line := range strings.Lines(info) {
		stats, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_"+cmd+":")
		if !ok {
			continue
		}
		for _, kv := range strings.Split(stats, ",") {
			if v, ok := strings.CutPrefix(kv, "calls="); ok {
				return strconv.ParseUint(v, 10, 64)
			}
		}
	}
	return 0, nil // never called since the reset
}

// awaitClients waits until at most want connections besides the admin one
// are open, so that a count that follows sees only new ones.
func (e *env) awaitClients(want int) error { return awaitConnections(e.clients, want) }

// awaitConnections waits until count reports at most want connections.
func awaitConnections(count func() (int, error), want int) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, err := count()
		if err != nil || n <= want {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d connections still open to redis, want at most %d", n, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// machineFacts describes the machine, the software and the command.
func machineFacts(ctx context.Context, o options, args []string, serverBin, benchBin string) *table {
	t := &table{title: "Machine and run", header: []string{"", ""}}
	t.add("command", "`cd bench && go run ."+quoteArgs(args)+"`")
	t.add("started", time.Now().UTC().Format(time.RFC3339))
	t.add("nproc", fmt.Sprintf("%d (GOMAXPROCS %d)", runtime.NumCPU(), runtime.GOMAXPROCS(0)))
	t.add("CPU", cpuModel())
	t.add("load average at start", loadAverage())
	t.add("go", runtime.Version()+" "+runtime.GOOS+"/"+runtime.GOARCH)
	t.add("redis-server", binaryVersion(ctx, serverBin)+" ("+serverBin+"), loopback, `--save \"\" --appendonly no`, on the same cores as the clients")
	t.add("redis-benchmark", binaryVersion(ctx, benchBin)+" ("+benchBin+")")
	t.add("connectorcache", moduleRevision(ctx))
	t.add("clients", "redigo "+depVersion("github.com/gomodule/redigo")+
		", rueidis "+depVersion("github.com/redis/rueidis")+
		", golang.org/x/oauth2 "+depVersion("golang.org/x/oauth2"))
	t.add("settings", fmt.Sprintf("%d rounds; throughput %v per measurement; latency %v per measurement; token benchtime %v",
		o.rounds, o.duration, o.latency, o.benchtime))
	return t
}

func quoteArgs(args []string) string {
	var b strings.Builder
	for _, a := range args {
		b.WriteByte(' ')
		if a == "" || strings.ContainsAny(a, " \t'\"$`\\") {
			a = strconv.Quote(a)
		}
		b.WriteString(a)
	}
	return b.String()
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// depVersion is the version of module path built into the harness.
func depVersion(path string) string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	for _, d := range bi.Deps {
		if d.Path == path {
			return d.Version
		}
	}
	return "unknown"
}

// moduleRevision names the connectorcache source measured: the parent
// folder (the replace directive), at its git commit when it is a checkout.
func moduleRevision(ctx context.Context) string {
	out, err := exec.CommandContext(ctx, "git", "-C", "..", "describe", "--always", "--dirty").Output()
	if err != nil {
		return "../ (replace directive)"
	}
	rev := string(bytes.TrimSpace(out))
	if strings.HasSuffix(rev, "-dirty") {
		rev = strings.TrimSuffix(rev, "-dirty") + " with uncommitted changes"
	}
	return "../ at " + rev
}

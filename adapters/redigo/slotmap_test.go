package redigo

import (
	"context"
	"reflect"
	"testing"

	"github.com/gomodule/redigo/redis"
)

func TestRedirectOf(t *testing.T) {
	tests := []struct {
		give string
		from string
		want redirect
		ok   bool
	}{
		{give: "MOVED 3999 127.0.0.1:6381", from: "127.0.0.1:6379", want: redirect{slot: 3999, addr: "127.0.0.1:6381"}, ok: true},
		{give: "ASK 3999 10.0.0.2:7000", from: "10.0.0.1:7000", want: redirect{ask: true, slot: 3999, addr: "10.0.0.2:7000"}, ok: true},
		{give: "MOVED 12182 ::1:17002", from: "[::1]:17001", want: redirect{slot: 12182, addr: "[::1]:17002"}, ok: true},
		{give: "MOVED 12182 [::1]:17002", from: "[::1]:17001", want: redirect{slot: 12182, addr: "[::1]:17002"}, ok: true},
		{give: "MOVED 5 :6381", from: "node-1.example:6379", want: redirect{slot: 5, addr: "node-1.example:6381"}, ok: true},
		{give: "MOVED 5 node-2.example:6379", from: "node-1.example:6379", want: redirect{slot: 5, addr: "node-2.example:6379"}, ok: true},
		{give: "MOVED 16384 h:1", from: "h:2"},
		{give: "MOVED x h:1", from: "h:2"},
		{give: "MOVED 5 h", from: "h:2"},
		{give: "MOVED 5 h:0", from: "h:2"},
		{give: "ERR something else", from: "h:2"},
		{give: "MOVED 5", from: "h:2"},
	}
	for _, tt := range tests {
		got, ok := redirectOf(redis.Error(tt.give), tt.from)
		if ok != tt.ok || got != tt.want {
			t.Errorf("redirectOf(%q) = %+v, %v; want %+v, %v", tt.give, got, ok, tt.want, tt.ok)
		}
	}
}

func TestParseSlots(t *testing.T) {
	node := func(host any, port int64, extra ...any) []any {
		return append([]any{host, port, []byte("0123456789abcdef")}, extra...)
	}
	meta := []any{} // Redis 7 adds a map of metadata to each node
	tests := []struct {
		name    string
		give    []any
		want    []slotRange
		wantErr bool
	}{
		{
			name: "primaries with replicas and metadata",
			give: []any{
				[]any{int64(0), int64(5460), node([]byte("10.0.0.1"), 7000, meta), node([]byte("10.0.0.4"), 7000, meta)},
				[]any{int64(5461), int64(16383), node([]byte("10.0.0.2"), 7000, meta)},
			},
			want: []slotRange{
				{first: 0, last: 5460, primary: "10.0.0.1:7000", replicas: []string{"10.0.0.4:7000"}},
				{first: 5461, last: 16383, primary: "10.0.0.2:7000"},
			},
		},
		{
			name: "no host: the asked node's, whether empty or NULL",
			give: []any{
				[]any{int64(0), int64(99), node([]byte(""), 7001)},
				[]any{int64(100), int64(199), node(nil, 7002)},
			},
			want: []slotRange{
				{first: 0, last: 99, primary: "seed.example:7001"},
				{first: 100, last: 199, primary: "seed.example:7002"},
			},
		},
		{
			name: "unknown endpoint: the range left out, a replica skipped",
			give: []any{
				[]any{int64(0), int64(99), node([]byte("?"), 7001)},
				[]any{int64(100), int64(199), node([]byte("h"), 7002), node([]byte("?"), 7003), []any{"bad"}},
			},
			want: []slotRange{{first: 100, last: 199, primary: "h:7002"}},
		},
		{name: "slots reversed", give: []any{[]any{int64(9), int64(1), node([]byte("h"), 1)}}, wantErr: true},
		{name: "slot out of range", give: []any{[]any{int64(0), int64(16384), node([]byte("h"), 1)}}, wantErr: true},
		{name: "no node", give: []any{[]any{int64(0), int64(1)}}, wantErr: true},
		{name: "primary without a port", give: []any{[]any{int64(0), int64(1), []any{[]byte("h")}}}, wantErr: true},
		{name: "not an array", give: []any{[]byte("x")}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseSlots(tt.give, "seed.example")
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseSlots error = %v, want error %v", err, tt.wantErr)
			}
			if !tt.wantErr && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("parseSlots = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// idleTransport is a node's transport for tests that never send a command.
type idleTransport struct{}

func (idleTransport) do(context.Context, string, ...any) (any, error)       { return nil, errClosed }
func (idleTransport) doAsking(context.Context, string, ...any) (any, error) { return nil, errClosed }
func (idleTransport) stats() PoolStats                                      { return PoolStats{} }
func (idleTransport) close() error                                          { return nil }

// TestCluster_LoadRightAfterAReading: a caller that found no map, and asks
// for one just after a reading ended, within the spacing of readings, gets
// the map that reading loaded.
func TestCluster_LoadRightAfterAReading(t *testing.T) {
	c := newCluster([]string{"seed:1"},
		func(addr string) *node { return &node{addr: addr, t: idleTransport{}} },
		func(context.Context, string) ([]slotRange, error) {
			return []slotRange{{first: 0, last: numSlots - 1, primary: "node:1"}}, nil
		})
	defer c.close()
	for i := range 2 {
		if err := c.load(t.Context()); err != nil {
			t.Fatalf("load #%d = %v", i+1, err)
		}
	}
	if n, err := c.owner(t.Context(), 42); err != nil || n.addr != "node:1" {
		t.Errorf("owner of slot 42 = %v, %v; want node:1", n, err)
	}
}

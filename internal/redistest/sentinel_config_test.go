package redistest

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestSentinelOptions_config(t *testing.T) {
	valid := SentinelOptions{Master: "mymaster", MasterAddr: "127.0.0.1:6379"}
	with := func(edit func(*SentinelOptions)) SentinelOptions {
		o := valid
		edit(&o)
		return o
	}
	tests := []struct {
		name      string
		give      SentinelOptions
		wantLines []string
		wantErr   string
	}{
		{
			name: "defaults",
			give: valid,
			wantLines: []string{
				"sentinel monitor mymaster 127.0.0.1 6379 1",
				"sentinel down-after-milliseconds mymaster 1000",
				"sentinel failover-timeout mymaster 3000",
			},
		},
		{
			name: "everything",
			give: with(func(o *SentinelOptions) {
				o.Quorum, o.DownAfter, o.FailoverTimeout = 2, 500*time.Millisecond, 5*time.Second
				o.MasterUser, o.MasterPassword, o.Username, o.Password = "mu", "mpw", "su", "spw"
			}),
			wantLines: []string{
				"sentinel monitor mymaster 127.0.0.1 6379 2",
				"sentinel down-after-milliseconds mymaster 500",
				"sentinel failover-timeout mymaster 5000",
				"sentinel auth-pass mymaster mpw",
				"sentinel auth-user mymaster mu",
				"user default off",
				"user su on >spw ~* &* +@all",
				"sentinel sentinel-user su",
				"sentinel sentinel-pass spw",
			},
		},
		{
			name:      "password only",
			give:      with(func(o *SentinelOptions) { o.Password = "spw" }),
			wantLines: []string{"requirepass spw", "sentinel sentinel-pass spw"},
		},
		{name: "no master", give: with(func(o *SentinelOptions) { o.Master = "" }), wantErr: "Master is empty"},
		{name: "host name", give: with(func(o *SentinelOptions) { o.MasterAddr = "localhost:6379" }), wantErr: "not an IP address"},
		{name: "no port", give: with(func(o *SentinelOptions) { o.MasterAddr = "127.0.0.1" }), wantErr: "MasterAddr"},
		{name: "bad port", give: with(func(o *SentinelOptions) { o.MasterAddr = "127.0.0.1:http" }), wantErr: "MasterAddr"},
		{name: "space in a password", give: with(func(o *SentinelOptions) { o.Password = "a b" }), wantErr: "Password: byte 1 is"},
		{name: "quote in a name", give: with(func(o *SentinelOptions) { o.Master = `m"` }), wantErr: "Master: byte"},
		{name: "user without password", give: with(func(o *SentinelOptions) { o.Username = "su" }), wantErr: "without a Password"},
		{name: "master user without password", give: with(func(o *SentinelOptions) { o.MasterUser = "mu" }), wantErr: "without a MasterPassword"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.give.config()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("config() error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
			for _, want := range tt.wantLines {
				if !slices.Contains(lines, want) {
					t.Errorf("config() =\n%s\nwant the line %q", got, want)
				}
			}
		})
	}
}

package redigo_test

import (
	"crypto/tls"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wa2genesys/connectorcache/adapters/redigo"
	"github.com/wa2genesys/connectorcache/internal/contract"
	"github.com/wa2genesys/connectorcache/internal/redistest"
	"github.com/wa2genesys/connectorcache/ports"
)

// checkWorks fails t unless c reaches the server and the stores work on it.
func checkWorks(t *testing.T, c *redigo.Client) {
	t.Helper()
	if err := c.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	tenant := contract.TenantID(t)
	tokens := redigo.NewTokenStore(c)
	if err := tokens.PutToken(t.Context(), tenant, secretToken, time.Minute); err != nil {
		t.Fatalf("PutToken: %v", err)
	}
	if got, found, err := tokens.GetToken(t.Context(), tenant); err != nil || !found || got.AccessToken != secretToken.AccessToken {
		t.Fatalf("GetToken = found %v, %v; want the token put", found, err)
	}
	dedupe := redigo.NewDedupeStore(c)
	if st, err := dedupe.Claim(t.Context(), tenant, "msg", "owner", time.Minute); err != nil || st != ports.ClaimAcquired {
		t.Fatalf("Claim = %d, %v; want ClaimAcquired", st, err)
	}
	if owned, err := dedupe.Commit(t.Context(), tenant, "msg", "owner", time.Hour); err != nil || !owned {
		t.Fatalf("Commit = %v, %v; want owned", owned, err)
	}
}

// checkFailsWithoutSecrets fails t unless c's Ping fails with an error that
// holds none of secrets.
func checkFailsWithoutSecrets(t *testing.T, c *redigo.Client, secrets ...string) {
	t.Helper()
	err := c.Ping(t.Context())
	if err == nil {
		t.Fatal("Ping: no error")
	}
	for _, s := range secrets {
		if strings.Contains(err.Error(), s) {
			t.Errorf("Ping error %q holds a secret", err)
		}
	}
}

// connCase is one way of reaching a server: the options given and whether
// connecting must fail.
type connCase struct {
	name    string
	give    redigo.Options
	wantErr bool
}

// checkConnCases runs each case on both transports: a client with the case's
// URL, password and TLS configuration must work (and pass more, when given),
// or fail with an error that holds none of secrets.
func checkConnCases(t *testing.T, tests []connCase, secrets []string, more func(*testing.T, *redigo.Client)) {
	t.Helper()
	forEachTransport(t, func(t *testing.T, tr transport) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				o := options(tt.give.URL, tr)
				o.Password = tt.give.Password
				o.TLSConfig = tt.give.TLSConfig
				c := newClient(t, o)
				if tt.wantErr {
					checkFailsWithoutSecrets(t, c, secrets...)
					return
				}
				checkWorks(t, c)
				if more != nil {
					more(t, c)
				}
			})
		}
	})
}

func TestRequirePass(t *testing.T) {
	const (
		password = "Corr3ct-Horse-Battery"
		wrong    = "Wr0ng-Staple-Guess"
	)
	srv := redistest.Start(t, "--requirepass", password)
	tests := []connCase{
		{name: "password option", give: redigo.Options{URL: srv.URL(), Password: password}},
		{name: "password in the URL only", give: redigo.Options{URL: "redis://:" + password + "@" + srv.Addr()}},
		{name: "password option replaces the URL's", give: redigo.Options{URL: "redis://:" + wrong + "@" + srv.Addr(), Password: password}},
		{name: "password option with the default user named", give: redigo.Options{URL: "redis://default@" + srv.Addr(), Password: password}},
		{name: "lone name in the URL is the password", give: redigo.Options{URL: "redis://" + password + "@" + srv.Addr()}},
		{name: "lone wrong name in the URL", give: redigo.Options{URL: "redis://" + wrong + "@" + srv.Addr()}, wantErr: true},
		{name: "wrong password option", give: redigo.Options{URL: srv.URL(), Password: wrong}, wantErr: true},
		{name: "wrong password in the URL", give: redigo.Options{URL: "redis://:" + wrong + "@" + srv.Addr()}, wantErr: true},
		{name: "no password", give: redigo.Options{URL: srv.URL()}, wantErr: true},
	}
	checkConnCases(t, tests, []string{password, wrong}, nil)
}

func TestACLUserInTheURL(t *testing.T) {
	const (
		password = "alicepw-Sekr1t"
		wrong    = "alice-Wr0ng-pw"
	)
	srv := redistest.Start(t)
	srv.Do(t, nil, "ACL", "SETUSER", "alice", "on", ">"+password, "~genesys:*", "+@all")

	tests := []connCase{
		{name: "user and password in the URL", give: redigo.Options{URL: "redis://alice:" + password + "@" + srv.Addr()}},
		{name: "user in the URL, password option", give: redigo.Options{URL: "redis://alice@" + srv.Addr(), Password: password}},
		{name: "wrong password", give: redigo.Options{URL: "redis://alice:" + wrong + "@" + srv.Addr()}, wantErr: true},
		{name: "unknown user", give: redigo.Options{URL: "redis://mallory:" + password + "@" + srv.Addr()}, wantErr: true},
	}
	// Alice may only touch genesys:* keys: the client is alice, not the
	// default user.
	checkConnCases(t, tests, []string{password, wrong}, func(t *testing.T, c *redigo.Client) {
		err := c.Set(t.Context(), "outside:"+contract.TenantID(t), "v", time.Minute)
		if err == nil || !strings.Contains(err.Error(), "NOPERM") {
			t.Errorf("Set outside alice's keys = %v, want a NOPERM error", err)
		}
	})
}

func TestDialErrorDoesNotHoldTheURLPassword(t *testing.T) {
	const password = "Url-Passw0rd-Never-Logged"
	url := "redis://alice:" + password + "@" + redistest.ClosedAddr(t)
	forEachTransport(t, func(t *testing.T, tr transport) {
		c := newClient(t, shortTimeouts(url, tr))
		checkFailsWithoutSecrets(t, c, password)
	})
}

func TestTLS(t *testing.T) {
	pki := redistest.NewPKI(t)
	srv := redistest.StartTLS(t, pki.CertFile, pki.KeyFile, pki.CAFile)
	port := strconv.Itoa(srv.Port)
	other := redistest.NewPKI(t) // a CA that did not sign the server's certificate

	tests := []connCase{
		{name: "rediss to 127.0.0.1, trusting the CA", give: redigo.Options{URL: "rediss://127.0.0.1:" + port, TLSConfig: &tls.Config{RootCAs: pki.Roots}}},
		{name: "rediss to localhost, trusting the CA", give: redigo.Options{URL: "rediss://localhost:" + port, TLSConfig: &tls.Config{RootCAs: pki.Roots}}},
		{name: "rediss with the system roots", give: redigo.Options{URL: "rediss://127.0.0.1:" + port}, wantErr: true},
		{name: "rediss trusting another CA", give: redigo.Options{URL: "rediss://127.0.0.1:" + port, TLSConfig: &tls.Config{RootCAs: other.Roots}}, wantErr: true},
		{name: "plain redis to the TLS port", give: redigo.Options{URL: "redis://127.0.0.1:" + port}, wantErr: true},
	}
	checkConnCases(t, tests, nil, nil)
}

func TestTLSWithPassword(t *testing.T) {
	const password = "Tls-And-Passw0rd"
	pki := redistest.NewPKI(t)
	srv := redistest.StartTLS(t, pki.CertFile, pki.KeyFile, pki.CAFile, "--requirepass", password)
	forEachTransport(t, func(t *testing.T, tr transport) {
		o := options("rediss://127.0.0.1:"+strconv.Itoa(srv.Port), tr)
		o.TLSConfig = &tls.Config{RootCAs: pki.Roots}

		t.Run("right password", func(t *testing.T) {
			o := o
			o.Password = password
			checkWorks(t, newClient(t, o))
		})
		t.Run("wrong password", func(t *testing.T) {
			o := o
			o.Password = "Not-" + password
			checkFailsWithoutSecrets(t, newClient(t, o), password, o.Password)
		})
	})
}

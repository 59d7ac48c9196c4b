package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestE2E_AuthOutageServesTheLastTokenUntilItsMinimumValidity: the login
// host fails from just after the first token was issued. Deliveries go on
// with that token past its refresh point, until it has less than
// token.stale_min_validity to live; then they fail (503: Meta redelivers)
// and, once the login host is back, the redeliveries are delivered: no
// message is lost.
func TestE2E_AuthOutageServesTheLastTokenUntilItsMinimumValidity(t *testing.T) {
	const (
		lifetime = 8 * time.Second
		// Refresh point 5s after the login, served stale until 6s.
		margin   = 3 * time.Second
		staleMin = 2 * time.Second
	)
	h := startHost(t, hostOptions{env: map[string]string{
		"TOKEN_REFRESH_MARGIN":     margin.String(),
		"TOKEN_STALE_MIN_VALIDITY": staleMin.String(),
		"TOKEN_REFRESH_AHEAD":      "0s",
		"GENESYS_MAX_RETRY_AFTER":  "0s",
		"TOKEN_LOCAL_MAX_AGE":      "1s",
	}})
	h.genesys.login.SetLifetime(int(lifetime.Seconds()))

	issuedAfter := time.Now()
	if status, res := h.post(textPayload("wamid.stale-0", "first")); status != http.StatusOK || res.Delivered != 1 {
		t.Fatalf("first POST = %d %+v, want 200, delivered", status, res)
	}
	issuedBefore := time.Now()
	h.genesys.login.SetAnswer(func(int64) (int, string, string) {
		return http.StatusServiceUnavailable, "application/json", `{"message":"auth service unavailable"}`
	})
	// The token is served stale until staleDeadline, somewhere between
	// these two instants.
	staleFrom, staleTo := issuedAfter.Add(lifetime-staleMin), issuedBefore.Add(lifetime-staleMin)

	type attempt struct {
		id             string
		sent, answered time.Time
		status         int
	}
	var attempts []attempt
	for i := 1; time.Now().Before(staleTo.Add(1500 * time.Millisecond)); i++ {
		a := attempt{id: fmt.Sprintf("wamid.stale-%d", i), sent: time.Now()}
		a.status, _ = h.post(textPayload(a.id, "during the outage"))
		a.answered = time.Now()
		attempts = append(attempts, a)
		time.Sleep(100 * time.Millisecond)
	}

	var servedStale, failed int
	var redeliver []string
	for _, a := range attempts {
		switch {
		case a.answered.Before(staleFrom) && a.status != http.StatusOK:
			t.Errorf("%s answered %d at %v of the token's life, want 200: the token still had %v to live",
				a.id, a.status, a.answered.Sub(issuedAfter).Round(time.Millisecond), staleMin)
		case a.sent.After(staleTo) && a.status == http.StatusOK:
			t.Errorf("%s delivered at %v of the token's life, want it refused: under %v left", a.id, a.sent.Sub(issuedAfter).Round(time.Millisecond), staleMin)
		}
		if a.status == http.StatusOK && a.sent.After(issuedBefore.Add(lifetime-margin)) {
			servedStale++
		}
		if a.status != http.StatusOK {
			if a.status != http.StatusServiceUnavailable {
				t.Errorf("%s answered %d, want 503 so that Meta redelivers it", a.id, a.status)
			}
			failed++
			redeliver = append(redeliver, a.id)
		}
	}
	if servedStale == 0 || failed == 0 {
		t.Fatalf("%d messages delivered past the refresh point, %d refused; want some of each", servedStale, failed)
	}
	if got := h.svc.mod.Stats().Tokens.StaleServed; got == 0 {
		t.Error("Stats().Tokens.StaleServed = 0")
	}
	if !strings.Contains(h.logs.String(), "serving the last token") {
		t.Errorf("no stale-serving warning logged:\n%s", h.logs.String())
	}

	// The login host is back: Meta's redeliveries go through.
	h.genesys.login.SetAnswer(nil)
	for _, id := range redeliver {
		if status, res := h.post(textPayload(id, "during the outage")); status != http.StatusOK || res.Delivered != 1 {
			t.Errorf("redelivery of %s = %d %+v, want 200, delivered", id, status, res)
		}
	}
	delivered := h.genesys.deliveredIDs()
	for _, a := range attempts {
		if delivered[a.id] != 1 {
			t.Errorf("%s reached Genesys %d times, want once", a.id, delivered[a.id])
		}
	}
}

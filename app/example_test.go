package app_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"go.uber.org/zap"

	"github.com/wa2genesys/connectorcache/app"
	"github.com/wa2genesys/connectorcache/domain"
	"github.com/wa2genesys/connectorcache/ports"
)

// authService stands for the Genesys OAuth client: it hands out a token
// for a tenant.
type authService struct{ calls int }

func (a *authService) FetchToken(_ context.Context, tenantID string) (ports.Token, error) {
	a.calls++
	return ports.Token{AccessToken: "token-for-" + tenantID, ExpiresIn: time.Hour}, nil
}

// Example wires the module as a connector does: configuration from
// config.yaml and the environment, the module from the configuration, then
// a token for each call to Genesys and a claim for each WhatsApp message.
// It runs on the memory store; a deployment keeps the default, Redis.
func Example() {
	cfg, err := app.LoadConfig("") // or the path of config.yaml
	if err != nil {
		log.Fatal(err)
	}
	cfg.Store = app.StoreMemory

	ctx := context.Background()
	auth := &authService{}
	mod, err := app.New(ctx, cfg, zap.NewNop(), auth)
	if err != nil {
		log.Fatal(err)
	}
	defer mod.Close()

	// A token for every call to Genesys: fetched once, then cached.
	for range 3 {
		if _, err := mod.Tokens.Token(ctx, "tenant-a"); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Println("auth service calls:", auth.calls)

	// Meta delivers the same message twice: it is processed once.
	for range 2 {
		claim, err := mod.Dedupe.Claim(ctx, "tenant-a", "wamid.HBgLMTU1NTEyMzQ1NjcVAgASGBQzQUVC")
		if err != nil {
			log.Fatal(err)
		}
		switch claim.Status() {
		case domain.ClaimNew:
			fmt.Println("processing the message")
			// On failure: claim.Release(ctx), so that Meta's retry is processed.
			if err := claim.Commit(ctx); err != nil {
				log.Fatal(err)
			}
		case domain.ClaimDone:
			fmt.Println("duplicate skipped:", claim.Status())
		case domain.ClaimInFlight:
			// Another worker holds it and may yet fail: do not acknowledge
			// it (answer 503), so that the sender retries.
			fmt.Println("in flight elsewhere: retry later")
		}
	}

	fmt.Println("healthy:", mod.Ping(ctx) == nil)
	// Output:
	// auth service calls: 1
	// processing the message
	// duplicate skipped: done
	// healthy: true
}

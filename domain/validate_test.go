package domain_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang/mock/gomock"

	"github.com/wa2genesys/connectorcache/domain"
	"github.com/wa2genesys/connectorcache/internal/mocks"
	"github.com/wa2genesys/connectorcache/ports"
)

// badTenantIDs are tenant ids every entry point must reject before it calls
// a store.
var badTenantIDs = []struct {
	name string
	give string
}{
	{name: "empty", give: ""},
	{name: "129 bytes", give: strings.Repeat("t", 129)},
	{name: "129 bytes of two-byte runes and one ASCII", give: strings.Repeat("ä", 64) + "a"},
	{name: "invalid UTF-8", give: "tenant-\xff"},
	{name: "truncated UTF-8", give: "tenant-\xc3"},
	{name: "colon", give: "a:b"},
	{name: "leading colon", give: ":tenant"},
	{name: "space", give: "tenant 1"},
	{name: "tab", give: "tenant\t1"},
	{name: "newline", give: "tenant\n"},
	{name: "carriage return", give: "tenant\r1"},
	{name: "no-break space U+00A0", give: "tenant\u00a01"},
	{name: "em space U+2003", give: "tenant\u20031"},
	{name: "ideographic space U+3000", give: "tenant\u30001"},
	{name: "NUL", give: "tenant\x001"},
	{name: "DEL", give: "tenant\x7f"},
	{name: "escape", give: "\x1btenant"},
	{name: "C1 control U+0085", give: "tenant\u0085"},
}

// badMessageIDs are message ids Claim must reject before it calls a store.
var badMessageIDs = []struct {
	name string
	give string
}{
	{name: "empty", give: ""},
	{name: "513 bytes", give: "wamid." + strings.Repeat("A", 507)},
	{name: "space", give: "wamid. HBgL"},
	{name: "tab", give: "wamid.\tHBgL"},
	{name: "newline", give: "wamid.HBgL\n"},
	{name: "no-break space U+00A0", give: "wamid.\u00a0HBgL"},
	{name: "em space U+2003", give: "wamid.\u2003HBgL"},
	{name: "NUL", give: "wamid.\x00HBgL"},
	{name: "DEL", give: "wamid.\x7fHBgL"},
	{name: "invalid UTF-8", give: "wamid.\xfe\xff"},
}

// newStrictMocks returns mocks with no expectations: any call fails the test.
func newStrictMocks(t *testing.T) (*mocks.MockTokenStore, *mocks.MockTokenFetcher, *mocks.MockDedupeStore) {
	ctrl := gomock.NewController(t)
	return mocks.NewMockTokenStore(ctrl), mocks.NewMockTokenFetcher(ctrl), mocks.NewMockDedupeStore(ctrl)
}

func TestTokenRejectsInvalidTenantID(t *testing.T) {
	for _, tt := range badTenantIDs {
		t.Run(tt.name, func(t *testing.T) {
			store, fetcher, _ := newStrictMocks(t)
			cache := domain.NewTokenCache(store, fetcher, domain.TokenCacheConfig{})

			tok, err := cache.Token(boundedCtx(t), tt.give)
			if !errors.Is(err, domain.ErrInvalidTenantID) {
				t.Fatalf("Token(%q) error = %v, want ErrInvalidTenantID", tt.give, err)
			}
			if tok != "" {
				t.Errorf("Token(%q) = %q, want empty", tt.give, tok)
			}
			if got := cache.Stats(); got != (domain.TokenStats{}) {
				t.Errorf("Stats() = %+v, want zero", got)
			}
		})
	}
}

func TestInvalidateRejectsInvalidTenantID(t *testing.T) {
	for _, tt := range badTenantIDs {
		t.Run(tt.name, func(t *testing.T) {
			store, fetcher, _ := newStrictMocks(t)
			cache := domain.NewTokenCache(store, fetcher, domain.TokenCacheConfig{})

			err := cache.Invalidate(context.Background(), tt.give)
			if !errors.Is(err, domain.ErrInvalidTenantID) {
				t.Fatalf("Invalidate(%q) error = %v, want ErrInvalidTenantID", tt.give, err)
			}
		})
	}
}

func TestClaimRejectsInvalidTenantID(t *testing.T) {
	for _, tt := range badTenantIDs {
		t.Run(tt.name, func(t *testing.T) {
			_, _, store := newStrictMocks(t)
			dedupe := domain.NewDeduplicator(store, domain.DeduplicatorConfig{})

			claim, err := dedupe.Claim(context.Background(), tt.give, "wamid.HBgLMTU1NTEyMzQ1NjcVAgASGBQzQUE=")
			if !errors.Is(err, domain.ErrInvalidTenantID) {
				t.Fatalf("Claim(%q, …) error = %v, want ErrInvalidTenantID", tt.give, err)
			}
			if errors.Is(err, domain.ErrInvalidMessageID) {
				t.Errorf("Claim(%q, …) error = %v, also matches ErrInvalidMessageID", tt.give, err)
			}
			if claim != nil {
				t.Errorf("Claim(%q, …) claim = %+v, want nil", tt.give, claim)
			}
			if got := dedupe.Stats(); got != (domain.DedupeStats{}) {
				t.Errorf("Stats() = %+v, want zero", got)
			}
		})
	}
}

func TestClaimRejectsInvalidMessageID(t *testing.T) {
	for _, tt := range badMessageIDs {
		t.Run(tt.name, func(t *testing.T) {
			_, _, store := newStrictMocks(t)
			dedupe := domain.NewDeduplicator(store, domain.DeduplicatorConfig{})

			claim, err := dedupe.Claim(context.Background(), "tenant-1", tt.give)
			if !errors.Is(err, domain.ErrInvalidMessageID) {
				t.Fatalf("Claim(…, %q) error = %v, want ErrInvalidMessageID", tt.give, err)
			}
			if errors.Is(err, domain.ErrInvalidTenantID) {
				t.Errorf("Claim(…, %q) error = %v, also matches ErrInvalidTenantID", tt.give, err)
			}
			if claim != nil {
				t.Errorf("Claim(…, %q) claim = %+v, want nil", tt.give, claim)
			}
		})
	}
}

// goodTenantIDs are tenant ids every entry point accepts and hands to the
// store unchanged.
var goodTenantIDs = []struct {
	name string
	give string
}{
	{name: "one byte", give: "t"},
	{name: "128 bytes", give: strings.Repeat("t", 128)},
	{name: "128 bytes of two-byte runes", give: strings.Repeat("ä", 64)},
	{name: "non-ASCII", give: "tenänt-1"},
	{name: "uuid", give: "4f6f2a1e-2b7c-4c1e-9a57-0c2f5d1e8b3a"},
	{name: "punctuation", give: "org_1.eu-west/prod=a+b@c"},
}

func TestTokenAcceptsValidTenantID(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tt := range goodTenantIDs {
		t.Run(tt.name, func(t *testing.T) {
			ctrl := gomock.NewController(t)
			store := mocks.NewMockTokenStore(ctrl)
			fetcher := mocks.NewMockTokenFetcher(ctrl)
			store.EXPECT().GetToken(gomock.Any(), tt.give).
				Return(ports.CachedToken{AccessToken: "cached", ExpiresAt: now.Add(time.Hour)}, true, nil)
			cache := domain.NewTokenCache(store, fetcher, domain.TokenCacheConfig{Now: fixedClock(now)})

			tok, err := cache.Token(boundedCtx(t), tt.give)
			if err != nil {
				t.Fatalf("Token(%q) error = %v", tt.give, err)
			}
			if tok != "cached" {
				t.Errorf("Token(%q) = %q, want %q", tt.give, tok, "cached")
			}
		})
	}
}

func TestInvalidateAcceptsValidTenantID(t *testing.T) {
	for _, tt := range goodTenantIDs {
		t.Run(tt.name, func(t *testing.T) {
			ctrl := gomock.NewController(t)
			store := mocks.NewMockTokenStore(ctrl)
			store.EXPECT().DeleteToken(gomock.Any(), tt.give).Return(nil)
			cache := domain.NewTokenCache(store, mocks.NewMockTokenFetcher(ctrl), domain.TokenCacheConfig{})

			if err := cache.Invalidate(context.Background(), tt.give); err != nil {
				t.Fatalf("Invalidate(%q) error = %v", tt.give, err)
			}
		})
	}
}

func TestClaimAcceptsValidIDs(t *testing.T) {
	tests := []struct {
		name          string
		giveTenant    string
		giveMessageID string
	}{
		{name: "one-byte ids", giveTenant: "t", giveMessageID: "m"},
		{name: "128-byte tenant", giveTenant: strings.Repeat("t", 128), giveMessageID: "wamid.1"},
		{name: "non-ASCII tenant", giveTenant: "tenänt-1", giveMessageID: "wamid.1"},
		{name: "512-byte message id", giveTenant: "tenant-1", giveMessageID: "wamid." + strings.Repeat("A", 506)},
		{name: "wamid with '=' and '.'", giveTenant: "tenant-1", giveMessageID: "wamid.HBgLMTU1NTEyMzQ1NjcVAgASGBQzQUE0RjM2QzQ0NTg5MkY3RjRBNQA="},
		{name: "message id with colon", giveTenant: "tenant-1", giveMessageID: "a:b"},
		{name: "non-ASCII message id", giveTenant: "tenant-1", giveMessageID: "nachricht-ä-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctrl := gomock.NewController(t)
			store := mocks.NewMockDedupeStore(ctrl)
			store.EXPECT().Claim(gomock.Any(), tt.giveTenant, tt.giveMessageID, gomock.Any(), gomock.Any()).
				Return(ports.ClaimAcquired, nil)
			dedupe := domain.NewDeduplicator(store, domain.DeduplicatorConfig{})

			claim, err := dedupe.Claim(context.Background(), tt.giveTenant, tt.giveMessageID)
			if err != nil {
				t.Fatalf("Claim(%q, %q) error = %v", tt.giveTenant, tt.giveMessageID, err)
			}
			if got := claim.Status(); got != domain.ClaimNew {
				t.Errorf("Status() = %v, want %v", got, domain.ClaimNew)
			}
		})
	}
}

func fixedClock(now time.Time) func() time.Time {
	return func() time.Time { return now }
}

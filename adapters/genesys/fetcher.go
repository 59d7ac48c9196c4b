// Package genesys talks to Genesys Cloud for the connector: it fetches OAuth
// tokens with the client-credentials grant ([TokenFetcher]) and delivers
// inbound WhatsApp messages through the Open Messaging API ([Deliverer]).
package genesys

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/wa2genesys/connectorcache/internal/redact"
	"github.com/wa2genesys/connectorcache/ports"
)

// ErrUnknownTenant is returned, wrapped, for a tenant the adapter was not
// configured with.
var ErrUnknownTenant = errors.New("genesys: unknown tenant")

// LoginURL is the base URL of a region's login host: region
// "mypurecloud.com" gives https://login.mypurecloud.com.
func LoginURL(region string) string { return "https://login." + region }

// APIURL is the base URL of a region's API host: region "mypurecloud.com"
// gives https://api.mypurecloud.com.
func APIURL(region string) string { return "https://api." + region }

// Credentials are one tenant's OAuth client.
type Credentials struct {
	// LoginURL is the base URL of the tenant's login host, such as
	// https://login.mypurecloud.com; the token endpoint is LoginURL +
	// "/oauth/token".
	LoginURL string
	ClientID string
	// ClientSecret is a secret: never log it.
	ClientSecret string
}

// plainCredentials is Credentials without its methods, for fmt and
// encoding/json to format once the secret is masked.
type plainCredentials Credentials

// redacted is c with ClientSecret masked.
func (c Credentials) redacted() plainCredentials {
	c.ClientSecret = redact.Secret(c.ClientSecret)
	return plainCredentials(c)
}

// String formats c as %+v would, with ClientSecret masked.
func (c Credentials) String() string { return fmt.Sprintf("%+v", c.redacted()) }

// GoString formats c as %#v would, with ClientSecret masked.
func (c Credentials) GoString() string { return redact.GoSyntax("genesys.Credentials", c.redacted()) }

// Format formats c for every verb with ClientSecret masked: %#v as
// [Credentials.GoString], any other verb as it formats [Credentials.String].
func (c Credentials) Format(f fmt.State, verb rune) { redact.Format(f, verb, c.String, c.GoString) }

// MarshalJSON encodes c as encoding/json would, with ClientSecret masked.
func (c Credentials) MarshalJSON() ([]byte, error) { return json.Marshal(c.redacted()) }

// TokenFetcher fetches access tokens with the OAuth client-credentials
// grant, each tenant with its own client. It is safe for concurrent use.
type TokenFetcher struct {
	configs map[string]*clientcredentials.Config
	client  *http.Client
}

var _ ports.TokenFetcher = (*TokenFetcher)(nil)

// NewTokenFetcher returns a TokenFetcher for the tenants in creds, keyed by
// tenant id. Requests go through a copy of client that follows no
// redirect, whatever client's CheckRedirect says: a login host answering
// 3xx fails the fetch, and the client credentials go nowhere else. Nil
// means a zero http.Client (http.DefaultTransport, no timeout). The fetch
// is bounded by the caller's context.
func NewTokenFetcher(creds map[string]Credentials, client *http.Client) *TokenFetcher {
	configs := make(map[string]*clientcredentials.Config, len(creds))
	for id, c := range creds {
		configs[id] = &clientcredentials.Config{
			ClientID:     c.ClientID,
			ClientSecret: c.ClientSecret,
			TokenURL:     strings.TrimSuffix(c.LoginURL, "/") + "/oauth/token",
			AuthStyle:    oauth2.AuthStyleInHeader,
		}
	}
	return &TokenFetcher{configs: configs, client: noRedirects(client)}
}

// noRedirects returns a copy of client, or of a zero http.Client when it is
// nil, that follows no redirect: a 3xx answer is returned as it is, to be
// taken for a failure. client itself is left as it is.
func noRedirects(client *http.Client) *http.Client {
	c := &http.Client{}
	if client != nil {
		*c = *client
	}
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return c
}

// FetchToken fetches a fresh token for the tenant. Its ExpiresIn is the
// expires_in the login host answered, zero when it sent none. Errors name
// the tenant and the login host's answer, never the client secret.
func (f *TokenFetcher) FetchToken(ctx context.Context, tenantID string) (ports.Token, error) {
	cfg, ok := f.configs[tenantID]
	if !ok {
		return ports.Token{}, fmt.Errorf("fetch token for tenant %s: %w", tenantID, ErrUnknownTenant)
	}
	tok, err := cfg.Token(context.WithValue(ctx, oauth2.HTTPClient, f.client))
	if err != nil {
		return ports.Token{}, fmt.Errorf("fetch token for tenant %s: %w", tenantID, tokenError(err))
	}
	return ports.Token{AccessToken: tok.AccessToken, ExpiresIn: expiresIn(tok.Extra("expires_in"))}, nil
}

// tokenError keeps an error from the login host to its status and OAuth
// error code: oauth2's own message carries the whole response body.
func tokenError(err error) error {
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		return err
	}
	msg := "login answered"
	if re.Response != nil {
		msg += " " + re.Response.Status
	}
	if re.ErrorCode != "" {
		msg += " (" + re.ErrorCode + ")"
	}
	return errors.New(msg)
}

// expiresIn reads an expires_in value as the login host sent it: a JSON
// number or string, or a form value. Anything else, or nothing, is zero.
func expiresIn(v any) time.Duration {
	var secs float64
	switch x := v.(type) {
	case float64:
		secs = x
	case int64:
		secs = float64(x)
	case json.Number:
		secs, _ = x.Float64()
	case string:
		secs, _ = strconv.ParseFloat(strings.TrimSpace(x), 64)
	}
	if secs <= 0 || math.IsNaN(secs) || secs > math.MaxInt64/float64(time.Second) {
		return 0
	}
	return time.Duration(secs * float64(time.Second))
}

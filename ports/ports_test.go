package ports_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/wa2genesys/connectorcache/ports"
)

func TestClaimState_String(t *testing.T) {
	tests := []struct {
		give ports.ClaimState
		want string
	}{
		{give: ports.ClaimAcquired, want: "acquired"},
		{give: ports.ClaimHeld, want: "held"},
		{give: ports.ClaimCommitted, want: "committed"},
		{give: 0, want: "ClaimState(0)"},
		{give: 7, want: "ClaimState(7)"},
	}
	for _, tt := range tests {
		if got := tt.give.String(); got != tt.want {
			t.Errorf("ClaimState(%d).String() = %q, want %q", int(tt.give), got, tt.want)
		}
	}
}

func TestTokensPrintWithoutTheAccessToken(t *testing.T) {
	const secret = "eyJhbGciOi-the-access-token"
	expiresAt := time.Date(2025, 11, 26, 6, 10, 0, 0, time.UTC)
	tok := ports.Token{AccessToken: secret, ExpiresIn: time.Hour}
	cached := ports.CachedToken{AccessToken: secret, ExpiresAt: expiresAt, RefreshAt: expiresAt.Add(-5 * time.Minute)}

	tests := []struct {
		name       string
		give       any
		wantString string
		wantGo     string
	}{
		{
			name:       "Token",
			give:       tok,
			wantString: `ports.Token{AccessToken: "xxxxx", ExpiresIn: 1h0m0s}`,
			wantGo:     `ports.Token{AccessToken:"xxxxx", ExpiresIn:3600000000000}`,
		},
		{
			name:       "Token without an access token",
			give:       ports.Token{},
			wantString: `ports.Token{AccessToken: "", ExpiresIn: 0s}`,
			wantGo:     `ports.Token{AccessToken:"", ExpiresIn:0}`,
		},
		{
			name:       "CachedToken",
			give:       cached,
			wantString: `ports.CachedToken{AccessToken: "xxxxx", ExpiresAt: 2025-11-26T06:10:00Z, RefreshAt: 2025-11-26T06:05:00Z}`,
			wantGo: `ports.CachedToken{AccessToken:"xxxxx", ExpiresAt:time.Date(2025, time.November, 26, 6, 10, 0, 0, time.UTC), ` +
				`RefreshAt:time.Date(2025, time.November, 26, 6, 5, 0, 0, time.UTC)}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := fmt.Sprint(tt.give); got != tt.wantString {
				t.Errorf("%%v = %s\nwant %s", got, tt.wantString)
			}
			if got := fmt.Sprintf("%+v", tt.give); got != tt.wantString {
				t.Errorf("%%+v = %s\nwant %s", got, tt.wantString)
			}
			if got := fmt.Sprintf("%#v", tt.give); got != tt.wantGo {
				t.Errorf("%%#v = %s\nwant %s", got, tt.wantGo)
			}
			// zap.Any takes the tokens as fmt.Stringers: ports knows
			// nothing of zap.
			core, logs := observer.New(zapcore.DebugLevel)
			zap.New(core).Info("token", zap.Any("tok", tt.give))
			if got := logs.All()[0].ContextMap()["tok"]; got != tt.wantString {
				t.Errorf("zap.Any logged %v, want %s", got, tt.wantString)
			}
		})
	}

	t.Run("every form", func(t *testing.T) {
		core, logs := observer.New(zapcore.DebugLevel)
		zap.New(core).Info("tokens", zap.Any("tok", tok), zap.Any("cached", cached), zap.Any("ptr", &tok), zap.Any("cached_ptr", &cached))
		var logged bytes.Buffer
		zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(&logged), zapcore.DebugLevel)).
			Info("tokens", zap.Any("tok", tok), zap.Any("cached", cached), zap.Any("ptr", &tok))
		holder := struct {
			Tok    ports.Token
			Cached *ports.CachedToken
			All    []ports.Token
			ByID   map[string]ports.CachedToken
		}{tok, &cached, []ports.Token{tok}, map[string]ports.CachedToken{"acme": cached}}
		// encoding/json, which zap.Reflect and zap.Any of a struct holding
		// a token go through.
		marshaled, err := json.Marshal(holder)
		if err != nil {
			t.Fatalf("json.Marshal of a struct holding tokens: %v", err)
		}
		var reflected bytes.Buffer
		zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(&reflected), zapcore.DebugLevel)).
			Info("tokens", zap.Reflect("tok", tok), zap.Any("holder", holder))
		outputs := map[string]string{
			"zap observer":        fmt.Sprint(logs.All()[0].ContextMap()),
			"zap JSON":            logged.String(),
			"json.Marshal":        string(marshaled),
			"zap.Reflect and Any": reflected.String(),
		}
		if want := `"AccessToken":"xxxxx"`; !strings.Contains(string(marshaled), want) {
			t.Errorf("json.Marshal = %s, want the access token as %s", marshaled, want)
		}
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%10.3s", "%T %[1]v"} {
			for name, v := range map[string]any{"Token": tok, "*Token": &tok, "CachedToken": cached, "*CachedToken": &cached, "a struct holding them": holder} {
				outputs[verb+" of "+name] = fmt.Sprintf(verb, v)
			}
		}
		forms := []string{secret, hex.EncodeToString([]byte(secret)), strings.ToUpper(hex.EncodeToString([]byte(secret))), secret[:10]}
		for how, out := range outputs {
			for _, form := range forms {
				if strings.Contains(out, form) {
					t.Errorf("%s shows the access token (as %q): %s", how, form, out)
				}
			}
		}
	})
}

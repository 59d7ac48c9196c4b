package webhook_test

import (
	"strings"
	"testing"

	"github.com/wa2genesys/connectorcache/internal/webhook"
)

func TestSign_KnownVector(t *testing.T) {
	// RFC 4231 test case 2: HMAC-SHA-256 of "what do ya want for nothing?"
	// keyed with "Jefe".
	got := webhook.Sign([]byte("Jefe"), []byte("what do ya want for nothing?"))
	want := "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
	if got != want {
		t.Errorf("Sign = %s, want %s", got, want)
	}
}

func TestValidSignature(t *testing.T) {
	secret, body := []byte("app-secret"), []byte(`{"object":"whatsapp_business_account"}`)
	good := webhook.Sign(secret, body)
	tests := []struct {
		name   string
		secret []byte
		body   []byte
		give   string
		want   bool
	}{
		{"good", secret, body, good, true},
		{"upper-case hex", secret, body, "sha256=" + strings.ToUpper(strings.TrimPrefix(good, "sha256=")), true},
		{"missing", secret, body, "", false},
		{"no prefix", secret, body, strings.TrimPrefix(good, "sha256="), false},
		{"sha1 prefix", secret, body, "sha1=" + strings.TrimPrefix(good, "sha256="), false},
		{"not hex", secret, body, "sha256=zz", false},
		{"truncated", secret, body, good[:len(good)-2], false},
		{"other secret", []byte("other"), body, good, false},
		{"body changed by one byte", secret, append([]byte(nil), append(body, ' ')...), good, false},
		{"empty secret signs nothing", nil, body, webhook.Sign(nil, body), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := webhook.ValidSignature(tt.secret, tt.body, tt.give); got != tt.want {
				t.Errorf("ValidSignature = %v, want %v", got, tt.want)
			}
		})
	}
}

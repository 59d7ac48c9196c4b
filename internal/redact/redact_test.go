package redact_test

import (
	"fmt"
	"testing"

	"github.com/wa2genesys/connectorcache/internal/redact"
)

type secretive struct{ Key string }

type plainSecretive secretive

func (s secretive) String() string {
	return fmt.Sprintf("%+v", plainSecretive{Key: redact.Secret(s.Key)})
}

func (s secretive) GoString() string {
	return redact.GoSyntax("redact_test.secretive", plainSecretive{Key: redact.Secret(s.Key)})
}

func (s secretive) Format(f fmt.State, verb rune) { redact.Format(f, verb, s.String, s.GoString) }

func TestFormat_EveryVerbMasks(t *testing.T) {
	v := secretive{Key: "s3cr3t-k3y"}
	for format, want := range map[string]string{
		"%v":    "{Key:xxxxx}",
		"%+v":   "{Key:xxxxx}",
		"%s":    "{Key:xxxxx}",
		"%#v":   "redact_test.secretive{Key:\"xxxxx\"}",
		"%q":    `"{Key:xxxxx}"`,
		"%x":    fmt.Sprintf("%x", "{Key:xxxxx}"),
		"%d":    "%!d(string={Key:xxxxx})",
		"%8.3s": "     {Ke",
	} {
		if got := fmt.Sprintf(format, v); got != want {
			t.Errorf("Sprintf(%q) = %q, want %q", format, got, want)
		}
	}
}

func TestSecret(t *testing.T) {
	if got := redact.Secret(""); got != "" {
		t.Errorf("Secret(\"\") = %q, want \"\": an unset secret shows as unset", got)
	}
	if got := redact.Secret("s3cr3t"); got != redact.Mask {
		t.Errorf("Secret(set) = %q, want %q", got, redact.Mask)
	}
}

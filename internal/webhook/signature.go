package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// SignatureHeader is the header Meta signs webhook bodies in.
const SignatureHeader = "X-Hub-Signature-256"

const signaturePrefix = "sha256="

// Sign returns the X-Hub-Signature-256 value for body: "sha256=" and the
// hex HMAC-SHA256 of body keyed with secret.
func Sign(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return signaturePrefix + hex.EncodeToString(mac.Sum(nil))
}

// ValidSignature reports whether header is the signature of body under
// secret. The comparison takes constant time. An empty secret signs nothing.
func ValidSignature(secret, body []byte, header string) bool {
	got, ok := signatureDigest(header)
	if len(secret) == 0 || !ok {
		return false
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return hmac.Equal(got, mac.Sum(nil))
}

// wellFormedSignature reports whether header can be a signature at all:
// "sha256=" and 64 hex digits. One that cannot is refused before the body is
// read.
func wellFormedSignature(header string) bool {
	_, ok := signatureDigest(header)
	return ok
}

// signatureDigest is the HMAC-SHA256 digest header carries, if it is
// "sha256=" and 64 hex digits.
func signatureDigest(header string) ([]byte, bool) {
	digits, ok := strings.CutPrefix(header, signaturePrefix)
	if !ok || len(digits) != hex.EncodedLen(sha256.Size) {
		return nil, false
	}
	digest, err := hex.DecodeString(digits)
	return digest, err == nil
}

package ports_test

import (
	"testing"

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

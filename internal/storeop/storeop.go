// Package storeop names the operations of the store ports, as the
// decorators log and count them and as the connector exports them.
package storeop

// The operations of ports.TokenStore, ports.TokenLock and ports.DedupeStore.
const (
	GetToken      = "get_token"
	PutToken      = "put_token"
	DeleteToken   = "delete_token"
	DeleteTokenIf = "delete_token_if"
	LockToken     = "lock_token"
	UnlockToken   = "unlock_token"
	Claim         = "claim"
	Commit        = "commit"
	Release       = "release"
)

// All lists every operation, in the order of the ports' methods.
var All = []string{GetToken, PutToken, DeleteToken, DeleteTokenIf, LockToken, UnlockToken, Claim, Commit, Release}

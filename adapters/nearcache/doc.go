// Package nearcache keeps an in-process copy of what a shared store holds,
// in front of it. It serves two ends with one mechanism: speed, since a
// local answer needs no round trip, and outage, since the local copy still
// answers while the shared store fails.
//
// For tokens ([NewTokenStore]), a fresh local copy answers without a round
// trip, lock-free and without allocating, and while the shared store fails
// the copy answers until the token's own refresh point, so an outage does
// not send every message to the auth service; each such answer is
// reported through [TokenConfig.ServedStale], since the layer above sees
// no error. Staleness is bounded: a copy older than MaxAge is checked
// against the shared store again, so that an invalidation made by another
// replica reaches this one within MaxAge. Deleting a token drops the local
// copy at once.
//
// For dedupe ([NewDedupeStore]), every claim, commit and release this
// process makes is recorded locally too, in a bounded record. A message
// this process holds or has committed is answered from the record, so that
// duplicates reaching this process are caught even while the shared store
// fails, or after it restarted empty. The shared store's errors are
// returned: deciding what a failure means is the layer above's business.
package nearcache

// Package domain holds the connector's caching rules: [TokenCache] keeps one
// Genesys access token per tenant, and [Deduplicator] lets each WhatsApp
// message through once per tenant.
//
// The package depends only on the ports it is given. It never logs and never
// hides an error: a store that must not fail (see adapters/failopen) is
// decorated that way before it is handed in.
package domain

// Package supabase is meshhook-alerts' narrow, typed store over the Supabase
// REST API (PostgREST): alert rules, run rows, the alert log and its
// attempts, and the daemon's key/value state. Its migrations/ folder holds
// the SQL that creates the alert tables.
//
// The store is built on github.com/supabase-community/postgrest-go (the REST
// layer of supabase-go) with our own HTTP transport underneath, because the
// library alone has no timeouts, no typed errors and no way to ask for
// "insert, ignore duplicates". Every call takes a context, gets a per-request
// deadline and is retried with capped, jittered exponential backoff, but only
// for transient failures: network errors, 408, 429 (honouring Retry-After)
// and 500/502/503/504. Failures from the server are *Error values carrying the
// HTTP status and PostgREST's code, message, details and hint; classify them
// with IsNotFound, IsAuth and IsRetryable.
//
// Nothing outside this package imports postgrest-go: callers see only the
// domain types here. The API key is sent in request headers only and never
// appears in errors or logs.
package supabase

// Conformance check of the stand-in's Supabase Auth (internal/harness/authtest,
// behind its API gateway) against the official client, @supabase/supabase-js
// (its auth-js): password sign-in, the user, refresh and sign-out, with the
// project's publishable key, as the web UI does them.
//
// Driven by the Go test TestConformanceSupabaseJSAuth, which seeds the user.
// The script prints one line per failed check ("FAIL <check>: <why>"),
// then "DONE <n> checks, <m> failed", and exits 1 on any failure.
//
// Environment:
//   SUPABASE_URL     the project URL (Auth under /auth/v1)
//   PUBLISHABLE_KEY  sb_publishable_…
//   USER_ID, EMAIL, PASSWORD  the seeded user

import { createClient } from '@supabase/supabase-js'
import ws from 'ws'

import { env } from './env.mjs'

const url = env('SUPABASE_URL')
const key = env('PUBLISHABLE_KEY')
const userID = env('USER_ID')
const email = env('EMAIL')
const password = env('PASSWORD')

// Sessions are kept in memory and refreshed only when a check says so.
// (Node 20 has no WebSocket of its own; the Realtime client is unused.)
const client = () => createClient(url, key, {
  auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
  realtime: { transport: ws },
})

class Mismatch extends Error {}
const eq = (got, want, what) => {
  if (JSON.stringify(got) !== JSON.stringify(want)) throw new Mismatch(`${what}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`)
}
const truthy = (v, what) => {
  if (!v) throw new Mismatch(`${what}: got ${JSON.stringify(v)}`)
}

const checks = []
const check = (name, fn) => checks.push({ name, fn })

check('a wrong password is invalid_credentials', async () => {
  const { data, error } = await client().auth.signInWithPassword({ email, password: password + 'x' })
  truthy(error, 'error')
  eq(error.status, 400, 'status')
  eq(error.code, 'invalid_credentials', 'code')
  eq(data.session, null, 'session')
})

check('password sign-in, user, refresh, sign-out', async () => {
  const sb = client()
  const { data, error } = await sb.auth.signInWithPassword({ email: email.toLowerCase(), password })
  eq(error, null, 'sign-in error')
  const s = data.session
  truthy(s && s.access_token && s.refresh_token, 'session tokens')
  eq(s.token_type, 'bearer', 'token_type')
  truthy(s.expires_in > 0 && s.expires_at > Date.now() / 1000, 'expiry')
  eq(data.user.id, userID, 'user id')
  eq(data.user.email, email, 'user email')

  const got = await sb.auth.getUser()
  eq(got.error, null, 'getUser error')
  eq(got.data.user.id, userID, 'getUser id')

  const r = await sb.auth.refreshSession()
  eq(r.error, null, 'refresh error')
  truthy(r.data.session.access_token !== s.access_token, 'a new access token')
  truthy(r.data.session.refresh_token !== s.refresh_token, 'a new refresh token')
  eq(r.data.user.id, userID, 'refreshed user')
  // The spent refresh token no longer works (the stand-in has no reuse
  // interval; Supabase allows 10 s).
  const spent = await client().auth.refreshSession({ refresh_token: s.refresh_token })
  truthy(spent.error, 'spent refresh token refused')
  eq(spent.error.code, 'refresh_token_not_found', 'spent code')

  const out = await sb.auth.signOut({ scope: 'local' })
  eq(out.error, null, 'sign-out error')
  const after = await client().auth.getUser(r.data.session.access_token)
  truthy(after.error, 'the signed-out token is refused')
  // Auth answers 403 error_code session_not_found, which auth-js turns
  // into its AuthSessionMissingError.
  eq(after.error.name, 'AuthSessionMissingError', 'signed-out error')
  const again = await client().auth.refreshSession({ refresh_token: r.data.session.refresh_token })
  truthy(again.error, 'the signed-out refresh token is refused')
})

// ---------------------------------------------------------------------------

let failures = 0
for (const { name, fn } of checks) {
  try {
    await fn()
  } catch (err) {
    failures++
    const why = err instanceof Mismatch ? err.message : (err && err.stack) || String(err)
    process.stdout.write(`FAIL ${name}: ${why}\n`)
  }
}
process.stdout.write(`DONE ${checks.length} checks, ${failures} failed\n`)
process.exit(failures === 0 ? 0 : 1)

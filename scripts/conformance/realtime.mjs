// Conformance check of the Realtime stand-in (realtime/realtimetest) against
// the official client, @supabase/realtime-js.
//
// Driven by the Go test TestConformanceRealtimeJS, which owns the database.
// The two talk over stdio, one line per message:
//
//   script -> test  "READY 1"      subscribed (join ok + "Subscribed to PostgreSQL")
//   test           writes phase 1 rows, see PHASE1 below
//   script -> test  "PHASE1 OK"    every expected callback fired, nothing else
//   test           kills the server's TCP connections
//   script -> test  "READY 2"      realtime-js reconnected and re-subscribed
//   test           inserts row 3
//   script -> test  "PHASE2 OK" then "DONE"
//   script -> test  "FAIL <why>"   on any mismatch (exit code 1)
//
// Environment:
//   REALTIME_URL      e.g. ws://127.0.0.1:1234/realtime/v1
//   REALTIME_APIKEY   JWT used as apikey and as the channel access token
//   REALTIME_VSN      serializer version; empty = realtime-js default
//   REALTIME_TABLE    table in schema public with columns id, kind, note

import { RealtimeClient } from '@supabase/realtime-js'
import WebSocket from 'ws'

const url = mustEnv('REALTIME_URL')
const apikey = mustEnv('REALTIME_APIKEY')
const table = mustEnv('REALTIME_TABLE')
const vsn = process.env.REALTIME_VSN || ''
const WAIT_MS = 30_000

function mustEnv(name) {
  const v = process.env[name]
  if (!v) fail(`environment variable ${name} is not set`)
  return v
}

function say(line) {
  process.stdout.write(line + '\n')
}

function log(...args) {
  process.stderr.write(args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a))).join(' ') + '\n')
}

function fail(why) {
  say('FAIL ' + why)
  process.exit(1)
}

function assert(cond, why) {
  if (!cond) fail(why)
}

function sameJSON(a, b) {
  return JSON.stringify(a) === JSON.stringify(b)
}

// waitFor polls cond until it holds or WAIT_MS passes.
async function waitFor(what, cond) {
  const deadline = Date.now() + WAIT_MS
  while (!cond()) {
    if (Date.now() > deadline) fail(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

const options = { params: { apikey }, transport: WebSocket, logger: (kind, msg, data) => log('[rt]', kind, msg, data ?? '') }
if (vsn) options.vsn = vsn
const client = new RealtimeClient(url, options)
client.setAuth(apikey)

const events = [] // { binding, payload }
const statuses = []
const systems = []
const on = (binding) => (payload) => {
  log('event', binding, payload)
  events.push({ binding, payload })
}

const base = { schema: 'public', table }
const channel = client
  .channel('conformance')
  .on('postgres_changes', { event: 'INSERT', ...base }, on('insert'))
  .on('postgres_changes', { event: 'UPDATE', ...base }, on('update'))
  .on('postgres_changes', { event: 'DELETE', ...base }, on('delete'))
  .on('postgres_changes', { event: '*', ...base, filter: 'kind=eq.keep' }, on('filtered'))
  .on('system', {}, (payload) => {
    log('system', payload)
    systems.push(payload)
  })
  .subscribe((status, err) => {
    log('status', status, err ? String(err) : '')
    statuses.push(status)
  })

const subscribedCount = () =>
  systems.filter((s) => s.extension === 'postgres_changes' && s.status === 'ok' && s.message === 'Subscribed to PostgreSQL').length

const byBinding = (name) => events.filter((e) => e.binding === name).map((e) => e.payload)

function checkCommon(p, type) {
  assert(p.schema === 'public' && p.table === table, `schema/table of ${type}: ${JSON.stringify(p)}`)
  assert(p.eventType === type, `eventType ${p.eventType}, want ${type}`)
  assert(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/.test(p.commit_timestamp), `commit_timestamp ${p.commit_timestamp}`)
  assert(p.errors === null, `errors ${JSON.stringify(p.errors)}`)
}

async function main() {
  await waitFor('SUBSCRIBED and "Subscribed to PostgreSQL"', () => statuses.includes('SUBSCRIBED') && subscribedCount() >= 1)
  const endpoint = client.endpointURL()
  const wantVsn = vsn || '2.0.0'
  assert(endpoint.includes(`vsn=${wantVsn}`), `endpoint ${endpoint} does not use vsn ${wantVsn}`)
  say('READY 1')

  // Phase 1: insert 1 (keep), insert 2 (skip), update 1, delete 2.
  await waitFor('phase 1 callbacks', () => events.length >= 6)
  await new Promise((r) => setTimeout(r, 300)) // anything extra would show up now
  assert(events.length === 6, `want 6 callbacks, got ${events.length}: ${JSON.stringify(events)}`)

  const ins = byBinding('insert')
  assert(ins.length === 2, `INSERT binding fired ${ins.length} times`)
  ins.forEach((p) => checkCommon(p, 'INSERT'))
  assert(sameJSON(ins[0].new, { id: 1, kind: 'keep', note: 'first' }), `insert 1 new: ${JSON.stringify(ins[0].new)}`)
  assert(sameJSON(ins[0].old, {}), `insert old must be {}: ${JSON.stringify(ins[0].old)}`)
  assert(ins[1].new.id === 2 && ins[1].new.kind === 'skip', `insert 2 new: ${JSON.stringify(ins[1].new)}`)

  const upd = byBinding('update')
  assert(upd.length === 1, `UPDATE binding fired ${upd.length} times`)
  checkCommon(upd[0], 'UPDATE')
  assert(sameJSON(upd[0].new, { id: 1, kind: 'keep', note: 'changed' }), `update new: ${JSON.stringify(upd[0].new)}`)
  assert(sameJSON(upd[0].old, { id: 1 }), `update old (default replica identity): ${JSON.stringify(upd[0].old)}`)

  const del = byBinding('delete')
  assert(del.length === 1, `DELETE binding fired ${del.length} times`)
  checkCommon(del[0], 'DELETE')
  assert(sameJSON(del[0].old, { id: 2 }), `delete old: ${JSON.stringify(del[0].old)}`)
  assert(sameJSON(del[0].new, {}), `delete new must be {}: ${JSON.stringify(del[0].new)}`)

  const filtered = byBinding('filtered')
  assert(
    sameJSON(filtered.map((p) => [p.eventType, p.new.id]), [['INSERT', 1], ['UPDATE', 1]]),
    `filter kind=eq.keep delivered ${JSON.stringify(filtered.map((p) => [p.eventType, p.new.id, p.old]))}`
  )
  say('PHASE1 OK')

  // Phase 2: the test kills the connection; realtime-js must reconnect,
  // rejoin and be told "Subscribed to PostgreSQL" again.
  await waitFor('re-subscription after the connection was killed', () => subscribedCount() >= 2)
  const afterKill = statuses.slice(statuses.indexOf('SUBSCRIBED') + 1)
  assert(afterKill.includes('CHANNEL_ERROR') || afterKill.includes('CLOSED'), `no error status after the kill: ${statuses}`)
  assert(afterKill.includes('SUBSCRIBED'), `not SUBSCRIBED again: ${statuses}`)
  events.length = 0
  say('READY 2')

  await waitFor('phase 2 callbacks', () => events.length >= 2)
  await new Promise((r) => setTimeout(r, 300))
  assert(events.length === 2, `want 2 callbacks after reconnect, got ${JSON.stringify(events)}`)
  const ins3 = byBinding('insert')
  assert(ins3.length === 1 && sameJSON(ins3[0].new, { id: 3, kind: 'keep', note: 'third' }), `insert 3: ${JSON.stringify(ins3)}`)
  const f3 = byBinding('filtered')
  assert(f3.length === 1 && f3[0].new.id === 3, `filtered insert 3: ${JSON.stringify(f3)}`)
  say('PHASE2 OK')

  await client.removeChannel(channel)
  client.disconnect()
  say('DONE')
  process.exit(0)
}

main().catch((e) => fail(e && e.stack ? e.stack : String(e)))

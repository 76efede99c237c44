// Conformance check of the PostgREST stand-in (supabase/supabasetest.REST)
// against the official client, @supabase/postgrest-js.
//
// Driven by the Go test TestConformancePostgrestJS, which owns the database:
// it creates the fixture tables and functions (public.items, public.claims,
// add(), numbers(), items_named(), touch(), ...) and seeds items 1..5.
// Every check states what Supabase answers; the script prints one line per
// failed check ("FAIL <check>: <why>"), then "DONE <n> checks" or exits 1.
//
// Environment:
//   POSTGREST_URL    e.g. http://127.0.0.1:1234/rest/v1
//   SERVICE_KEY      service_role API key (JWT)
//   ANON_KEY         anon API key (JWT)
//   USER_TOKEN       access token of an authenticated user
//   EXPIRED_TOKEN    an expired access token
//   FOREIGN_TOKEN    a token signed with another project's secret

import { PostgrestClient } from '@supabase/postgrest-js'

import { env } from './env.mjs'

const url = env('POSTGREST_URL')
const serviceKey = env('SERVICE_KEY')
const anonKey = env('ANON_KEY')
const userToken = env('USER_TOKEN')
const expiredToken = env('EXPIRED_TOKEN')
const foreignToken = env('FOREIGN_TOKEN')

// client builds what supabase-js builds: apikey plus a bearer token.
function client(apikey, token = apikey) {
  const headers = {}
  if (apikey) headers.apikey = apikey
  if (token) headers.Authorization = `Bearer ${token}`
  return new PostgrestClient(url, { headers })
}

const db = client(serviceKey)

// ---------------------------------------------------------------------------
// A tiny harness.

const checks = []
const check = (name, fn) => checks.push({ name, fn })

class Mismatch extends Error {}

function canonical(v) {
  if (Array.isArray(v)) return v.map(canonical)
  if (v && typeof v === 'object') {
    return Object.fromEntries(Object.keys(v).sort().map((k) => [k, canonical(v[k])]))
  }
  return v
}

function eq(actual, expected, what) {
  const a = JSON.stringify(canonical(actual))
  const e = JSON.stringify(canonical(expected))
  if (a !== e) throw new Mismatch(`${what}: got ${a}, want ${e}`)
}

// ok asserts a successful response and returns its data.
function ok(res, status) {
  if (res.error) throw new Mismatch(`unexpected error (status ${res.status}): ${JSON.stringify(res.error)}`)
  eq(res.status, status, 'status')
  return res.data
}

// failed asserts an error response (status and the complete error object).
function failed(res, status, error) {
  eq(res.status, status, 'status')
  eq(res.data, null, 'data')
  eq(res.error, error, 'error')
}

const ids = (rows) => rows.map((r) => r.id)

// ---------------------------------------------------------------------------
// Reads.

check('select columns with order', async () => {
  const data = ok(await db.from('items').select('id, name').order('id'), 200)
  eq(data, [
    { id: 1, name: 'alpha' }, { id: 2, name: 'beta' }, { id: 3, name: 'gamma' },
    { id: 4, name: 'delta,quoted' }, { id: 5, name: 'Epsilon' },
  ], 'data')
})

check('select star renders rows like postgres', async () => {
  const data = ok(await db.from('items').select().eq('id', 1), 200)
  eq(data, [{
    id: 1, name: 'alpha', qty: 1, price: 1.5, tags: ['a', 'b'], data: { k: 'v', n: 1 },
    status: 'new', created_at: '2026-01-01T00:00:00.123456+00:00', note: null,
  }], 'data')
})

const filterCases = [
  ['eq', (q) => q.eq('qty', 2), [2]],
  ['neq', (q) => q.neq('qty', 2), [1, 3, 4, 5]],
  ['gt', (q) => q.gt('qty', 3), [4, 5]],
  ['gte', (q) => q.gte('qty', 3), [3, 4, 5]],
  ['lt', (q) => q.lt('qty', 2), [1]],
  ['lte', (q) => q.lte('qty', 2), [1, 2]],
  ['like', (q) => q.like('name', '%ta%'), [2, 4]],
  ['ilike', (q) => q.ilike('name', '%EPS%'), [5]],
  ['is null', (q) => q.is('note', null), [1, 4, 5]],
  ['not is null', (q) => q.not('note', 'is', null), [2, 3]],
  ['in with reserved characters', (q) => q.in('name', ['alpha', 'delta,quoted']), [1, 4]],
  ['contains', (q) => q.contains('tags', ['b']), [1, 2]],
  ['contained by', (q) => q.containedBy('tags', ['a', 'b']), [1, 2, 3, 5]],
  ['overlaps', (q) => q.overlaps('tags', ['a', 'c']), [1, 4]],
  ['json path', (q) => q.eq('data->>k', 'v'), [1, 4]],
  ['match', (q) => q.match({ status: 'new', qty: 5 }), [5]],
  ['or', (q) => q.or('qty.eq.1,qty.eq.5'), [1, 5]],
  ['nested or/and', (q) => q.or('qty.lt.2,and(qty.gt.3,status.eq.new)'), [1, 5]],
  ['same column twice', (q) => q.gte('qty', 2).lte('qty', 3), [2, 3]],
  ['timestamps with offsets', (q) => q.gte('created_at', '2026-01-02T00:00:00+00:00').lt('created_at', '2026-01-04T02:00:00+02:00'), [2, 3]],
  ['timestamp microseconds', (q) => q.eq('created_at', '2026-01-01T00:00:00.123456+00:00'), [1]],
  ['text search', (q) => q.textSearch('note', 'hello world', { type: 'websearch', config: 'english' }), [3]],
  ['filter escape hatch', (q) => q.filter('qty', 'in', '(1,2)'), [1, 2]],
]
for (const [name, apply, want] of filterCases) {
  check(`filter ${name}`, async () => {
    const data = ok(await apply(db.from('items').select('id')).order('id'), 200)
    eq(ids(data), want, 'ids')
  })
}

check('order with nulls and several columns', async () => {
  let data = ok(await db.from('items').select('id').order('price', { ascending: false, nullsFirst: false }).order('id'), 200)
  eq(ids(data), [3, 4, 1, 2, 5], 'price desc nulls last')
  data = ok(await db.from('items').select('id').order('price', { ascending: true, nullsFirst: true }).order('id', { ascending: false }), 200)
  eq(ids(data), [5, 2, 1, 4, 3], 'price asc nulls first')
})

check('range and limit', async () => {
  eq(ids(ok(await db.from('items').select('id').order('id').range(1, 3), 200)), [2, 3, 4], 'range')
  eq(ids(ok(await db.from('items').select('id').order('id').limit(2), 200)), [1, 2], 'limit')
})

check('exact count with a partial range', async () => {
  const res = await db.from('items').select('id', { count: 'exact' }).order('id').range(0, 1)
  eq(ids(ok(res, 206)), [1, 2], 'ids')
  eq(res.count, 5, 'count')
})

check('head count', async () => {
  const res = await db.from('items').select('*', { count: 'exact', head: true }).gt('qty', 2)
  eq(ok(res, 200), null, 'data')
  eq(res.count, 3, 'count')
})

check('single and maybeSingle', async () => {
  eq(ok(await db.from('items').select('id, name').eq('id', 2).single(), 200), { id: 2, name: 'beta' }, 'single')
  eq(ok(await db.from('items').select('id').eq('id', 99).maybeSingle(), 200), null, 'maybeSingle none')
  failed(await db.from('items').select('id').eq('id', 99).single(), 406, {
    code: 'PGRST116', details: 'The result contains 0 rows', hint: null,
    message: 'Cannot coerce the result to a single JSON object',
  })
})

// ---------------------------------------------------------------------------
// Writes.

check('insert returns the representation with defaults', async () => {
  const data = ok(await db.from('items').insert({ id: 10, name: 'ten' }).select('id, name, qty, tags, data, note'), 201)
  eq(data, [{ id: 10, name: 'ten', qty: 0, tags: [], data: {}, note: null }], 'data')
})

check('insert minimal', async () => {
  const res = await db.from('items').insert({ id: 11, name: 'eleven' })
  eq(ok(res, 201), null, 'data')
})

check('bulk insert with different keys sends columns (missing keys become null)', async () => {
  const data = ok(await db.from('items').insert([{ id: 12, name: 'a' }, { id: 13, name: 'b', note: 'n' }]).select('id, note'), 201)
  eq(data, [{ id: 12, note: null }, { id: 13, note: 'n' }], 'data')
})

check('bulk insert with defaultToNull: false uses column defaults', async () => {
  const data = ok(await db.from('items')
    .insert([{ id: 14, name: 'c' }, { id: 15, name: 'd', qty: 3 }], { defaultToNull: false })
    .select('id, qty'), 201)
  eq(data, [{ id: 14, qty: 0 }, { id: 15, qty: 3 }], 'data')
})

check('bulk insert with a missing not-null key fails like Supabase', async () => {
  const res = await db.from('items').insert([{ id: 16, name: 'e' }, { id: 17, name: 'f', qty: 1 }])
  eq(res.status, 400, 'status')
  eq(res.data, null, 'data')
  const { details, ...rest } = res.error
  eq(rest, {
    code: '23502', hint: null,
    message: 'null value in column "qty" of relation "items" violates not-null constraint',
  }, 'error')
  // The failing row holds the created_at default, so match the prefix.
  if (!String(details).startsWith('Failing row contains (16, e, null, null, {}, {}, null, ')) {
    throw new Mismatch(`details: got ${JSON.stringify(details)}`)
  }
})

check('duplicate key is 409 23505', async () => {
  failed(await db.from('items').insert({ id: 1, name: 'dup' }), 409, {
    code: '23505', details: 'Key (id)=(1) already exists.', hint: null,
    message: 'duplicate key value violates unique constraint "items_pkey"',
  })
})

check('update with filters', async () => {
  const data = ok(await db.from('items').update({ note: 'updated' }).in('id', [10, 11]).select('id, note').order('id'), 200)
  eq(data, [{ id: 10, note: 'updated' }, { id: 11, note: 'updated' }], 'data')
  eq(ok(await db.from('items').update({ qty: 9 }).eq('id', 10), 204), null, 'minimal update')
})

check('update count', async () => {
  const res = await db.from('items').update({ qty: 1 }, { count: 'exact' }).gte('id', 12).lte('id', 13)
  eq(ok(res, 204), null, 'data')
  eq(res.count, 2, 'count')
})

check('delete with filters', async () => {
  const data = ok(await db.from('items').delete().eq('id', 11).select('id, name'), 200)
  eq(data, [{ id: 11, name: 'eleven' }], 'data')
  eq(ok(await db.from('items').delete().eq('id', 12), 204), null, 'minimal delete')
})

// ---------------------------------------------------------------------------
// Upsert and claims.

const claim = { config_id: '00000000-0000-0000-0000-0000000000c1', run_id: 'run-1', event: 'failed' }

check('upsert ignoreDuplicates returns only inserted rows', async () => {
  const first = ok(await db.from('claims')
    .upsert(claim, { onConflict: 'config_id,run_id,event', ignoreDuplicates: true })
    .select('run_id, event, attempts'), 201)
  eq(first, [{ run_id: 'run-1', event: 'failed', attempts: 0 }], 'first claim')
  const second = ok(await db.from('claims')
    .upsert(claim, { onConflict: 'config_id,run_id,event', ignoreDuplicates: true })
    .select('run_id, event, attempts'), 201)
  eq(second, [], 'second claim')
})

check('upsert merges on conflict', async () => {
  const data = ok(await db.from('claims')
    .upsert({ ...claim, attempts: 3 }, { onConflict: 'config_id,run_id,event' })
    .select('run_id, attempts'), 200)
  eq(data, [{ run_id: 'run-1', attempts: 3 }], 'data')
  const inserted = ok(await db.from('claims')
    .upsert([{ ...claim, run_id: 'run-2', attempts: 1 }], { onConflict: 'config_id,run_id,event' })
    .select('run_id, attempts'), 201)
  eq(inserted, [{ run_id: 'run-2', attempts: 1 }], 'inserted')
})

check('upsert on the primary key by default', async () => {
  const data = ok(await db.from('items').upsert({ id: 1, name: 'alpha-upserted' }).select('id, name'), 200)
  eq(data, [{ id: 1, name: 'alpha-upserted' }], 'data')
})

// ---------------------------------------------------------------------------
// RPC.

check('rpc scalar', async () => {
  eq(ok(await db.rpc('add', { a: 1, b: 2 }), 200), 3, 'POST')
  eq(ok(await db.rpc('add', { a: 40, b: 2 }, { get: true }), 200), 42, 'GET')
})

check('rpc set of scalars', async () => {
  eq(ok(await db.rpc('numbers'), 200), [1, 2, 3], 'default argument')
  eq(ok(await db.rpc('numbers', { n: 2 }), 200), [1, 2], 'argument')
})

check('rpc set of rows with filters', async () => {
  const data = ok(await db.rpc('items_named', { pattern: '%a%' }).select('id').gt('qty', 1).order('id', { ascending: false }), 200)
  eq(ids(data), [4, 3, 2], 'ids')
})

check('rpc single row', async () => {
  eq(ok(await db.rpc('one_item', { p_id: 2 }).select('id, name'), 200), { id: 2, name: 'beta' }, 'data')
})

check('rpc void', async () => {
  eq(ok(await db.rpc('touch', { p_id: 2 }), 204), null, 'data')
})

check('rpc raise', async () => {
  failed(await db.rpc('fail_with', { msg: 'boom' }), 400, { code: 'P0001', details: 'the detail', hint: 'the hint', message: 'boom' })
})

check('unknown function is 404 PGRST202', async () => {
  failed(await db.rpc('nope', { a: 1 }), 404, {
    code: 'PGRST202',
    details: 'Searched for the function public.nope with parameter a or with a single unnamed json/jsonb parameter, but no matches were found in the schema cache.',
    hint: null,
    message: 'Could not find the function public.nope(a) in the schema cache',
  })
})

// ---------------------------------------------------------------------------
// Errors and auth.

check('unknown table is 404 PGRST205', async () => {
  failed(await db.from('itemz').select(), 404, {
    code: 'PGRST205', details: null, hint: "Perhaps you meant the table 'public.items'",
    message: "Could not find the table 'public.itemz' in the schema cache",
  })
})

check('unknown column is 400 42703', async () => {
  const res = await db.from('items').select('nope')
  eq(res.status, 400, 'status')
  eq(res.error.code, '42703', 'code')
  eq(res.error.message, 'column items.nope does not exist', 'message')
})

check('missing api key is 401', async () => {
  failed(await client(null, null).from('items').select(), 401, {
    message: 'No API key found in request', hint: 'No `apikey` request header or url param was found.',
  })
})

check('expired token is 401 PGRST303', async () => {
  failed(await client(anonKey, expiredToken).from('items').select(), 401, {
    code: 'PGRST303', details: null, hint: null, message: 'JWT expired',
  })
})

check('foreign token is 401 PGRST301', async () => {
  failed(await client(anonKey, foreignToken).from('items').select(), 401, {
    code: 'PGRST301', details: 'None of the keys was able to decode the JWT', hint: null,
    message: 'No suitable key or wrong key type',
  })
})

check('anon without grants is 401 42501', async () => {
  failed(await client(anonKey).from('private_notes').select(), 401, {
    code: '42501', details: null, hint: null, message: 'permission denied for table private_notes',
  })
})

check('user without grants is 403 42501', async () => {
  failed(await client(anonKey, userToken).from('private_notes').select(), 403, {
    code: '42501', details: null, hint: null, message: 'permission denied for table private_notes',
  })
})

check('row level security scopes a user', async () => {
  const mine = ok(await client(anonKey, userToken).from('workflow_runs').select('status').order('status'), 200)
  eq(mine, [{ status: 'failed' }, { status: 'running' }], 'user rows')
  const all = ok(await db.from('workflow_runs').select('status', { count: 'exact', head: true }), 200)
  eq(all, null, 'head data')
  const res = await db.from('workflow_runs').select('status', { count: 'exact', head: true })
  eq(res.count, 3, 'service role count')
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

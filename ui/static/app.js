// meshhook-alerts web UI: one small module, no framework. Every page calls
// the daemon's HTTP API (/api/) with the token the user signed in with,
// which is kept in this tab's sessionStorage and never put in a URL.
//
// Two ways in: a Supabase user signs in with email and password at the
// project's Supabase Auth (its URL and publishable key come from
// GET /api/auth/config), and the UI then calls the API with the user's
// access token, refreshing it before it expires; or anyone pastes a token
// (the operator token, or a user's access token), which is used as is.

const TOKEN_KEY = "meshhook-alerts.token";
// SESSION_KEY holds a password sign-in's Supabase session (all but the
// access token, which is under TOKEN_KEY): Auth's URL and publishable key,
// the refresh token, when the access token expires, the user's email.
const SESSION_KEY = "meshhook-alerts.session";
// An access token is refreshed this long before it expires, or at half its
// lifetime when that is shorter.
const REFRESH_MARGIN_MS = 60000;
// AUTH_TIMEOUT_MS bounds every call to Supabase Auth.
const AUTH_TIMEOUT_MS = 15000;
const API = new URL("/api/", location.href).pathname;
const EVENTS = ["succeeded", "failed", "canceled", "paused", "delayed", "stalled", "recovered"];
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

// ---------- API access ----------

/** ApiError is a failed API call; fields maps each bad field to why. */
class ApiError extends Error {
  constructor(status, code, message, fields) {
    super(message);
    this.status = status;
    this.code = code;
    this.fields = fields || {};
  }
}

function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

// ---------- Supabase Auth (password sign-in, refresh, sign-out) ----------

/** session is the stored Supabase session, or null after a token sign-in. */
function session() {
  try {
    return JSON.parse(sessionStorage.getItem(SESSION_KEY) || "null");
  } catch {
    return null;
  }
}

/** AuthError is a failed call to Supabase Auth. */
class AuthError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/**
 * authCall POSTs to Supabase Auth (<url>/auth/v1/<path>) with the
 * publishable key as apikey and, when given, a user's access token as
 * Bearer. Tokens go in headers and bodies, never in the URL.
 */
async function authCall(cfg, path, body, bearer) {
  const headers = { apikey: cfg.key, Accept: "application/json", "Content-Type": "application/json" };
  if (bearer) headers.Authorization = "Bearer " + bearer;
  let resp;
  try {
    resp = await fetch(cfg.url.replace(/\/+$/, "") + "/auth/v1/" + path, {
      method: "POST", headers, body: JSON.stringify(body || {}), cache: "no-store", credentials: "omit",
      signal: AbortSignal.timeout(AUTH_TIMEOUT_MS),
    });
  } catch (e) {
    throw new AuthError(0, "network", "cannot reach Supabase Auth: " + e.message);
  }
  const text = await resp.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    // an error page: reported by status below
  }
  if (!resp.ok) {
    const d = data || {};
    throw new AuthError(resp.status, d.error_code || d.error || "http_" + resp.status,
      d.msg || d.error_description || d.message || `Supabase Auth answered ${resp.status}`);
  }
  return data;
}

/** saveSession stores what Auth answered to a sign-in or a refresh. */
function saveSession(cfg, data) {
  if (!data || !data.access_token || !data.refresh_token) throw new AuthError(0, "bad_response", "Supabase Auth answered without a session");
  const lifetime = Number(data.expires_in) > 0 ? Number(data.expires_in) : 3600;
  const expiresAt = Number(data.expires_at) > 0 ? Number(data.expires_at) : Math.floor(Date.now() / 1000) + lifetime;
  sessionStorage.setItem(TOKEN_KEY, data.access_token);
  sessionStorage.setItem(SESSION_KEY, JSON.stringify({
    url: cfg.url, key: cfg.key, email: (data.user && data.user.email) || cfg.email || "",
    refresh_token: data.refresh_token, expires_at: expiresAt, expires_in: lifetime,
  }));
}

/** refreshDue is when (ms since the epoch) the session's token should be refreshed. */
function refreshDue(s) {
  const margin = Math.min(REFRESH_MARGIN_MS, (s.expires_in * 1000) / 2);
  return s.expires_at * 1000 - margin;
}

let refreshing = null;
let refreshTimer = null;

/** refreshSession trades the refresh token for a new session, once at a time. */
function refreshSession() {
  if (!refreshing) {
    refreshing = (async () => {
      const s = session();
      if (!s) return;
      try {
        const data = await authCall(s, "token?grant_type=refresh_token", { refresh_token: s.refresh_token });
        saveSession(s, data);
      } catch (e) {
        // Auth refused the refresh token (signed out elsewhere, or spent):
        // the session is over. Anything else: try again soon, until the
        // access token has expired.
        if (e.status >= 400 && e.status < 500) {
          forget("Your session has ended (" + e.message + "); sign in again.");
          throw e;
        }
        if (Date.now() >= s.expires_at * 1000) {
          forget("Your session expired and could not be renewed (" + e.message + "); sign in again.");
          throw e;
        }
        scheduleRefresh(5000);
        return;
      }
      scheduleRefresh();
    })().finally(() => {
      refreshing = null;
    });
  }
  return refreshing;
}

/** scheduleRefresh arms the timer that refreshes the token before it expires. */
function scheduleRefresh(delay) {
  clearTimeout(refreshTimer);
  const s = session();
  if (!s) return;
  const wait = delay !== undefined ? delay : Math.max(0, refreshDue(s) - Date.now());
  refreshTimer = setTimeout(() => refreshSession().catch(() => {}), wait);
}

/** freshToken is the token to call the API with, refreshed first if it is due. */
async function freshToken() {
  const s = session();
  if (s && Date.now() >= refreshDue(s)) await refreshSession();
  return token();
}

/** forget drops every token of this tab and goes to sign-in. */
function forget(message) {
  clearTimeout(refreshTimer);
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(SESSION_KEY);
  if (message) sessionStorage.setItem(TOKEN_KEY + ".message", message);
  location.assign("./");
}

/** api calls the daemon's API and returns the decoded JSON body. */
async function api(method, path, body, tok) {
  const own = tok === undefined;
  if (own) tok = await freshToken();
  const headers = { Accept: "application/json" };
  if (tok) headers.Authorization = "Bearer " + tok;
  const init = { method, headers, cache: "no-store", credentials: "omit" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(API + path, init);
  } catch (e) {
    throw new ApiError(0, "network", "cannot reach the daemon: " + e.message);
  }
  const text = await resp.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      throw new ApiError(resp.status, "bad_response", `the daemon answered ${resp.status} with a body that is not JSON`);
    }
  }
  if (!resp.ok) {
    const e = (data && data.error) || {};
    if (resp.status === 401 && own && tok === token() && document.body.dataset.page !== "signin") {
      signOut("Your token was refused (" + (e.message || "401") + "); sign in again.");
    }
    throw new ApiError(resp.status, e.code || "http_" + resp.status, e.message || `HTTP ${resp.status}`, e.fields);
  }
  return data;
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") q.set(k, v);
  }
  const s = q.toString();
  return s ? "?" + s : "";
}

/**
 * signOut ends a password sign-in's session at Supabase Auth (this session
 * only: the user's other devices stay signed in) and forgets every token.
 * The tokens are forgotten even when Auth cannot be reached.
 */
async function signOut(message) {
  const s = session();
  const tok = token();
  clearTimeout(refreshTimer);
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(SESSION_KEY);
  if (s && tok) {
    try {
      await authCall(s, "logout?scope=local", {}, tok);
    } catch (e) {
      if (!message && e.status !== 401 && e.status !== 403 && e.status !== 404) {
        message = "Signed out here, but Supabase Auth could not be told (" + e.message + "); the session ends when its token expires.";
      }
    }
  }
  forget(message);
}

// ---------- small DOM helpers ----------

/** h builds an element: h("td", {dataset: {label: "x"}}, "text", child). */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "dataset") Object.assign(el.dataset, v);
    else if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

function setStatus(el, text, kind = "") {
  el.textContent = text;
  el.className = "status" + (kind ? " " + kind : "");
}

function fmtTime(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  if (isNaN(d)) return iso;
  return d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" });
}

function timeEl(iso) {
  return iso ? h("time", { datetime: iso }, fmtTime(iso)) : "—";
}

function badge(text, cls = text) {
  return h("span", { class: "badge " + cls }, text);
}

function short(id) {
  return id ? id.slice(0, 8) : "—";
}

/** urlCode shows a (redacted) URL as code, keeping "[redacted]" on one line. */
function urlCode(u) {
  if (!u) return "—";
  const i = u.indexOf("[redacted]");
  if (i < 0) return h("code", {}, u);
  return h("code", {}, u.slice(0, i), h("span", { class: "nowrap" }, "[redacted]"), u.slice(i + 10));
}

function cell(label, ...content) {
  return h("td", { dataset: { label } }, ...content);
}

/** table builds a table with a header row; rows are <tr> elements. */
function table(caption, headers, rows) {
  return h("div", { class: "table-wrap" },
    h("table", {},
      caption ? h("caption", {}, caption) : null,
      h("thead", {}, h("tr", {}, headers.map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, rows)));
}

/** showFieldErrors puts each API field error next to its field; the rest go to summary. */
function showFieldErrors(form, fields, summary) {
  clearFieldErrors(form);
  const rest = [];
  let first = null;
  for (const [field, why] of Object.entries(fields || {})) {
    const out = $("#err-" + CSS.escape(field), form);
    if (!out) {
      rest.push(field + ": " + why);
      continue;
    }
    out.textContent = why;
    const input = form.querySelector(`#${CSS.escape(field)}, [name="${field}"]`);
    if (input) {
      input.setAttribute("aria-invalid", "true");
      first = first || input;
    }
  }
  if (summary && rest.length) summary.textContent = rest.join("; ");
  if (first) first.focus();
}

function clearFieldErrors(form) {
  $$(".field-error, .form-error", form).forEach((p) => (p.textContent = ""));
  $$("[aria-invalid]", form).forEach((i) => i.removeAttribute("aria-invalid"));
}

function debounce(fn, ms) {
  let t;
  return (...args) => {
    clearTimeout(t);
    t = setTimeout(() => fn(...args), ms);
  };
}

// ---------- project and workflow names ----------

let namesPromise = null;

/**
 * names loads the caller's projects and workflows by name (GET /api/projects)
 * once per page: {projects: Map id → {name, workflows: Map slug → name}}.
 * Failing, it gives empty maps: ids and slugs are shown instead.
 */
function names() {
  if (!namesPromise) {
    namesPromise = api("GET", "projects").then((r) => {
      const projects = new Map();
      for (const p of r.projects) projects.set(p.id, { name: p.name, workflows: new Map(p.workflows.map((w) => [w.slug, w.name])) });
      return { projects };
    }).catch(() => ({ projects: new Map() }));
  }
  return namesPromise;
}

/** projectLabel shows a project by name, its id on hover; by id when the name is unknown. */
function projectLabel(n, id) {
  if (!id) return h("span", { class: "hint" }, "(no project)");
  const p = n.projects.get(id);
  return p ? h("span", { class: "name", title: id, dataset: { id } }, p.name) : h("code", { title: id }, id);
}

/** workflowLabel shows a workflow by name, its slug (and project id) on hover; by slug when the name is unknown. */
function workflowLabel(n, projectId, slug) {
  if (!slug) return h("span", { class: "hint" }, "every workflow");
  const p = n.projects.get(projectId);
  const name = p && p.workflows.get(slug);
  return name ? h("span", { class: "name", title: slug + (projectId ? " · project " + projectId : ""), dataset: { slug } }, name)
    : h("code", { title: projectId ? "project " + projectId : null }, slug);
}

// ---------- charts ----------

const SVG_NS = "http://www.w3.org/2000/svg";

/** s builds an SVG element. */
function svgEl(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) el.setAttribute(k, v);
  for (const c of children.flat()) if (c !== null && c !== undefined) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

/** niceMax rounds a chart's top up to 1, 2 or 5 times a power of ten. */
function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

function fmtMS(v) {
  if (v === null || v === undefined) return "—";
  if (v < 1000) return Math.round(v) + " ms";
  if (v < 60000) return (v / 1000).toFixed(v < 10000 ? 1 : 0) + " s";
  return (v / 60000).toFixed(1) + " min";
}

function clock(iso) {
  return new Date(iso).toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
}

/**
 * chartSVG draws one chart of the series at the given width: stacked bars
 * (kind "bars") or lines with gaps where a value is null (kind "lines").
 * Each series is {key, label, cls}; fmt formats a value.
 */
function chartSVG(series, kind, lines, width, fmt, title) {
  const H = 150, top = 8, bottom = 20, left = 52, right = 8;
  const n = series.buckets.length;
  const plotW = Math.max(40, width - left - right), plotH = H - top - bottom;
  const val = (b, k) => b[k];
  const totals = series.buckets.map((b) => kind === "bars" ? lines.reduce((t, l) => t + (val(b, l.key) || 0), 0)
    : Math.max(0, ...lines.map((l) => val(b, l.key) || 0)));
  // Counts get a top of at least 2, so that the middle line is a whole 1.
  const max = niceMax(Math.max(kind === "bars" ? 2 : 0, ...totals));
  const y = (v) => top + plotH - (v / max) * plotH;
  const step = plotW / n;
  const g = [];
  // Grid and axis labels: 0, half and the top.
  for (const v of [0, max / 2, max]) {
    g.push(svgEl("line", { class: "grid", x1: left, x2: left + plotW, y1: y(v), y2: y(v) }));
    g.push(svgEl("text", { class: "axis", x: left - 6, y: y(v) + 4, "text-anchor": "end" }, fmt(v)));
  }
  g.push(svgEl("text", { class: "axis", x: left, y: H - 5, "text-anchor": "start" }, clock(series.since)));
  g.push(svgEl("text", { class: "axis", x: left + plotW, y: H - 5, "text-anchor": "end" }, "now"));
  const span = (b) => clock(b.start) + "–" + clock(new Date(new Date(b.start).getTime() + series.bucket_seconds * 1000).toISOString());
  if (kind === "bars") {
    series.buckets.forEach((b, i) => {
      let base = 0;
      const tip = span(b) + ": " + lines.map((l) => `${l.label} ${b[l.key]}`).join(", ");
      for (const l of lines) {
        const v = b[l.key] || 0;
        if (!v) continue;
        g.push(svgEl("rect", { class: "bar " + l.cls, x: left + i * step + step * 0.1, width: Math.max(1, step * 0.8),
          y: y(base + v), height: Math.max(1, y(base) - y(base + v)) }, svgEl("title", {}, tip)));
        base += v;
      }
    });
  } else {
    for (const l of lines) {
      let d = "";
      let pen = false;
      series.buckets.forEach((b, i) => {
        const v = b[l.key];
        if (v === null || v === undefined) {
          pen = false;
          return;
        }
        const x = left + i * step + step / 2;
        d += (pen ? "L" : "M") + x.toFixed(1) + " " + y(v).toFixed(1);
        pen = true;
        g.push(svgEl("circle", { class: "dot " + l.cls, cx: x, cy: y(v), r: 2 }, svgEl("title", {}, `${span(b)}: ${l.label} ${fmt(v)}`)));
      });
      if (d) g.push(svgEl("path", { class: "line " + l.cls, d }));
    }
  }
  return svgEl("svg", { class: "chart", width, height: H, viewBox: `0 0 ${width} ${H}`, role: "img", "aria-label": title }, svgEl("title", {}, title), g);
}

/** legend lists a chart's series with their colours. */
function legend(lines, extra) {
  return h("p", { class: "legend" }, lines.map((l) => h("span", { class: "key" }, h("span", { class: "swatch " + l.cls }), l.label)), extra || null);
}

/**
 * chartsCard is a card with the delivery charts of every rule the caller
 * may see, or of one rule: attempts by outcome, commit → receipt latency
 * (p50, p99) and retries, over the last hour or the last 24 hours. It
 * refreshes while shown (the hour every 30 s, the day every 5 min) and
 * redraws when its width changes.
 */
function chartsCard(configId) {
  const WINDOWS = [["1h", "Last hour"], ["24h", "Last 24 hours"]];
  let win = "1h";
  let data = null;
  const status = h("p", { class: "status", role: "status", "aria-live": "polite" });
  const body = h("div", { class: "charts" });
  const buttons = WINDOWS.map(([w, label]) => h("button", {
    type: "button", class: "secondary small", "aria-pressed": w === win ? "true" : "false", dataset: { window: w },
    onclick: () => {
      win = w;
      for (const b of buttons) b.setAttribute("aria-pressed", String(b.dataset.window === w));
      load();
    },
  }, label));
  const card = h("section", { class: "card charts-card", id: configId ? "rule-charts" : "health-charts", "aria-label": "Deliveries over time" },
    h("div", { class: "title-row" }, h("h2", {}, "Deliveries over time"), h("span", { class: "actions", role: "group", "aria-label": "Time range" }, buttons)),
    body, status);

  function draw() {
    if (!data) return;
    const width = Math.floor(body.clientWidth) || 600;
    const per = data.bucket_seconds === 60 ? "per minute" : `per ${Math.round(data.bucket_seconds / 60)} min`;
    const sum = (k) => data.buckets.reduce((t, b) => t + b[k], 0);
    const outcome = [{ key: "delivered", label: "delivered", cls: "s-ok" }, { key: "gave_up", label: "gave up", cls: "s-bad" }];
    const latency = [{ key: "p50_ms", label: "p50", cls: "s-p50" }, { key: "p99_ms", label: "p99", cls: "s-p99" }];
    const retries = [{ key: "retried", label: "retried", cls: "s-warn" }];
    const delivered = sum("delivered"), gaveUp = sum("gave_up"), retried = sum("retried");
    const lat = data.buckets.filter((b) => b.p50_ms !== null);
    const worst = lat.length ? Math.max(...lat.map((b) => b.p99_ms)) : null;
    body.replaceChildren(
      h("figure", { class: "chart-box", id: (configId ? "rule" : "health") + "-chart-outcomes" },
        h("figcaption", {}, h("strong", {}, "Attempts by outcome"), " ", h("span", { class: "hint" }, per)),
        chartSVG(data, "bars", outcome, width, (v) => String(Math.round(v * 10) / 10),
          `Attempts by outcome ${per}: ${delivered} delivered, ${gaveUp} gave up`),
        legend(outcome, h("span", { class: "hint" }, ` ${delivered} delivered, ${gaveUp} gave up`))),
      h("figure", { class: "chart-box", id: (configId ? "rule" : "health") + "-chart-latency" },
        h("figcaption", {}, h("strong", {}, "Commit → receipt latency"), " ", h("span", { class: "hint" }, "from the run change's commit to the receiver's answer")),
        chartSVG(data, "lines", latency, width, fmtMS, `Commit to receipt latency, p50 and p99 ${per}` + (worst === null ? ": nothing delivered" : `; worst p99 ${fmtMS(worst)}`)),
        legend(latency, h("span", { class: "hint" }, worst === null ? " nothing delivered" : ` worst p99 ${fmtMS(worst)}`))),
      h("figure", { class: "chart-box", id: (configId ? "rule" : "health") + "-chart-retries" },
        h("figcaption", {}, h("strong", {}, "Retries"), " ", h("span", { class: "hint" }, "failed attempts tried again, " + per)),
        chartSVG(data, "bars", retries, width, (v) => String(Math.round(v * 10) / 10), `Retries ${per}: ${retried}`),
        legend(retries, h("span", { class: "hint" }, ` ${retried} in all`))));
  }

  async function load() {
    try {
      data = await api("GET", "alerts/series" + query({ window: win, config_id: configId }));
      draw();
      card.dataset.window = win;
      card.dataset.loaded = String(Date.now());
      setStatus(status, `${WINDOWS.find((w) => w[0] === win)[1]}, ${data.caller.operator ? "all projects" : "your projects"}${configId ? ", this rule" : ""}; updated ${new Date().toLocaleTimeString()}.`);
    } catch (e) {
      setStatus(status, "Could not load the charts: " + e.message, "error");
    }
  }
  let lastWidth = 0;
  new ResizeObserver(() => {
    const w = Math.floor(body.clientWidth);
    if (w && w !== lastWidth) {
      lastWidth = w;
      draw();
    }
  }).observe(body);
  load();
  // The last hour refreshes every 30 s; the last day, whose buckets are
  // 15 min wide and whose query reads a day of attempts, every 5 min.
  let since = Date.now();
  setInterval(() => {
    if (document.hidden || !card.isConnected || Date.now() - since < (win === "1h" ? 30000 : 300000) - 1000) return;
    since = Date.now();
    load();
  }, 30000);
  return card;
}

// ---------- page chrome ----------

async function chrome(page) {
  for (const a of $$("[data-nav]")) {
    if (a.dataset.nav === page || (page === "rule" && a.dataset.nav === "rules")) a.setAttribute("aria-current", "page");
  }
  const nav = $(".top nav");
  const who = $(".who");
  if (!token()) {
    nav.hidden = true;
    who.hidden = true;
    return;
  }
  $("#sign-out").addEventListener("click", () => signOut());
  try {
    const st = await api("GET", "status");
    const s = session();
    $("#who").textContent = st.caller.operator ? "Operator" : s && s.email ? s.email : "User " + short(st.caller.user_id);
  } catch {
    // the page's own calls report errors
  }
}

// ---------- sign-in ----------

function signinPage() {
  const form = $("#signin-form");
  const pwForm = $("#password-form");
  const status = $("#signin-status");
  const msg = sessionStorage.getItem(TOKEN_KEY + ".message");
  if (msg) {
    sessionStorage.removeItem(TOKEN_KEY + ".message");
    setStatus(status, msg, "error");
  } else if (token()) {
    location.replace("rules");
    return;
  }
  $("#token").focus();

  // Password sign-in, when the operator configured the publishable key.
  let cfg = null;
  api("GET", "auth/config", undefined, "").then((c) => {
    if (!c || !c.supabase) return;
    cfg = { url: c.supabase.url, key: c.supabase.publishable_key };
    pwForm.hidden = false;
    $("#token-signin").open = false;
    $("#email").focus();
  }).catch(() => {
    // tokens still work
  });

  pwForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearFieldErrors(pwForm);
    const email = $("#email").value.trim();
    const password = $("#password").value;
    const missing = {};
    if (!email) missing.email = "enter your email address";
    if (!password) missing.password = "enter your password";
    if (Object.keys(missing).length) {
      showFieldErrors(pwForm, missing);
      return;
    }
    setStatus(status, "Signing in…");
    try {
      const data = await authCall(cfg, "token?grant_type=password", { email, password });
      saveSession({ ...cfg, email }, data);
    } catch (e) {
      setStatus(status, "", "");
      showFieldErrors(pwForm, { password: e.status === 400 ? "wrong email or password (" + e.message + ")" : e.message });
      return;
    }
    $("#password").value = "";
    let st;
    try {
      st = await api("GET", "status", undefined, token());
    } catch (e) {
      // Auth let the user in but the daemon does not take the token
      // (another project's JWKS, for example): end the session again.
      await signOutQuietly();
      setStatus(status, "Signed in at Supabase, but this daemon refused the token: " + e.message, "error");
      return;
    }
    setStatus(status, "Signed in.", "ok");
    location.assign(landing(st));
  });

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearFieldErrors(form);
    const tok = $("#token").value.trim();
    if (!tok) {
      showFieldErrors(form, { token: "enter the operator token or an access token" });
      return;
    }
    setStatus(status, "Checking the token…");
    try {
      const st = await api("GET", "status", undefined, tok);
      sessionStorage.removeItem(SESSION_KEY);
      sessionStorage.setItem(TOKEN_KEY, tok);
      setStatus(status, "Signed in.", "ok");
      location.assign(landing(st));
    } catch (e) {
      setStatus(status, "", "");
      showFieldErrors(form, { token: e.message });
    }
  });
}

/**
 * landing is the first page after signing in: the rules, or the Health
 * page while the database is unreachable (the rules cannot be read then).
 */
function landing(st) {
  return st && st.database && !st.database.reachable ? "health" : "rules";
}

/** signOutQuietly ends the stored session at Auth and forgets it, staying on the page. */
async function signOutQuietly() {
  const s = session();
  const tok = token();
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(SESSION_KEY);
  if (s && tok) await authCall(s, "logout?scope=local", {}, tok).catch(() => {});
}

// ---------- rules list ----------

function rulesPage() {
  const form = $("#rules-filter");
  const status = $("#rules-status");
  const list = $("#rules-list");
  const params = new URLSearchParams(location.search);
  $("#f-project").value = params.get("project_id") || "";
  $("#f-workflow").value = params.get("workflow") || "";

  async function load() {
    const project = $("#f-project").value.trim();
    const workflow = $("#f-workflow").value.trim();
    const q = new URLSearchParams();
    if (project) q.set("project_id", project);
    if (workflow) q.set("workflow", workflow);
    history.replaceState(null, "", "rules" + (q.toString() ? "?" + q : ""));
    const pre = new URLSearchParams();
    if (project) pre.set("project_id", project);
    if (workflow && !UUID.test(workflow)) pre.set("workflow_slug", workflow);
    $("#new-rule").href = "rule" + (pre.toString() ? "?" + pre : "");
    setStatus(status, "Loading rules…");
    try {
      let rules, truncated, scope = "";
      if (workflow && UUID.test(workflow)) {
        const r = await api("GET", "alerts/config/" + encodeURIComponent(workflow) + query({ project_id: project }));
        ({ rules, truncated } = r);
        scope = ` for workflow ${r.workflow.name || r.workflow.slug}`;
      } else {
        ({ rules, truncated } = await api("GET", "alerts/config" + query({ project_id: project, workflow_slug: workflow })));
      }
      render(rules, await names());
      const n = rules.length;
      setStatus(status, `${n} rule${n === 1 ? "" : "s"}${scope}${truncated ? " (more exist: narrow the filter)" : ""}.`);
    } catch (e) {
      list.replaceChildren();
      setStatus(status, "Could not load the rules: " + e.message, "error");
    }
  }

  function render(rules, n) {
    const byProject = new Map();
    for (const r of rules) {
      const k = r.project_id || "";
      if (!byProject.has(k)) byProject.set(k, []);
      byProject.get(k).push(r);
    }
    const sections = [];
    for (const [project, rs] of byProject) {
      rs.sort((a, b) => (a.workflow_slug || "").localeCompare(b.workflow_slug || "") || a.name.localeCompare(b.name));
      const rows = rs.map((r) => ruleRow(r, n));
      const pname = n.projects.get(project);
      sections.push(h("section", { "aria-label": "Project " + (pname ? pname.name : project || "none"), dataset: { projectId: project } },
        h("h2", {}, "Project ", projectLabel(n, project)),
        table(null, ["Name", "Workflow", "Events", "Destination", "State", "Actions"], rows)));
    }
    if (!sections.length) {
      const filtered = $("#f-project").value.trim() || $("#f-workflow").value.trim();
      sections.push(h("div", { class: "empty", id: "rules-empty" }, filtered
        ? [h("p", {}, "No rules match this project or workflow."), h("p", {}, h("a", { href: "rules" }, "Show every rule"), " or ",
          h("a", { href: $("#new-rule").getAttribute("href") }, "create a rule for it"), ".")]
        : [h("p", {}, "No rules yet."), h("p", {}, h("a", { href: "rule" }, "Create a rule"),
          ": choose a project and a workflow (or the whole project), the run events to alert on, and the webhook URL to call.")]));
    }
    list.replaceChildren(...sections);
  }

  function ruleRow(r, n) {
    const state = r.enabled ? badge("enabled", "ok") : badge("disabled", "bad");
    const problems = Object.entries(r.problems || {}).map(([f, why]) => h("div", { class: "field-error" }, `${f}: ${why}`));
    const toggle = h("button", { type: "button", class: "secondary small", onclick: () => setEnabled(r, !r.enabled, toggle) },
      r.enabled ? "Disable" : "Enable");
    const del = h("button", { type: "button", class: "danger small", onclick: () => askDelete(r, del) }, "Delete");
    return h("tr", { dataset: { ruleId: r.id } },
      cell("Name", h("a", { href: "rule?id=" + encodeURIComponent(r.id) }, r.name)),
      cell("Workflow", workflowLabel(n, r.project_id, r.workflow_slug)),
      cell("Events", r.events.join(", ")),
      cell("Destination", (DESTINATIONS[r.destination] || DESTINATIONS.webhook).name, h("div", {}, urlCode(r.webhook_url))),
      cell("State", state, r.disabled_reason ? h("div", { class: "hint" }, r.disabled_reason) : null, problems),
      cell("Actions", h("span", { class: "actions" }, toggle, del)));
  }

  async function setEnabled(r, enabled, btn) {
    btn.disabled = true;
    try {
      await api("POST", "alerts/config", { ...ruleInput(r), enabled });
      setStatus(status, `Rule “${r.name}” ${enabled ? "enabled" : "disabled"}.`, "ok");
      await load();
    } catch (e) {
      btn.disabled = false;
      setStatus(status, `Could not ${enabled ? "enable" : "disable"} “${r.name}”: ${e.message}`, "error");
    }
  }

  function askDelete(r, btn) {
    if (btn.dataset.confirm) {
      deleteRule(r, btn);
      return;
    }
    btn.dataset.confirm = "1";
    btn.textContent = "Confirm delete";
    btn.setAttribute("aria-label", `Confirm: delete rule ${r.name} and its deliveries`);
    btn.focus();
  }

  async function deleteRule(r, btn) {
    btn.disabled = true;
    try {
      await api("DELETE", "alerts/config/" + encodeURIComponent(r.id));
      setStatus(status, `Rule “${r.name}” deleted.`, "ok");
      await load();
    } catch (e) {
      btn.disabled = false;
      setStatus(status, `Could not delete “${r.name}”: ${e.message}`, "error");
    }
  }

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    load();
  });
  load();
}

/** ruleInput is a stored rule as an update body that keeps its URL, secrets and headers. */
function ruleInput(r) {
  return {
    id: r.id, project_id: r.project_id, workflow_slug: r.workflow_slug, name: r.name, enabled: r.enabled,
    events: r.events, delay_threshold_seconds: r.delay_threshold_seconds, stall_threshold_seconds: r.stall_threshold_seconds,
    meshhook_signature: r.meshhook_signature, payload_template: r.payload_template,
    throttle_max: r.throttle_max, throttle_window_seconds: r.throttle_window_seconds,
    destination: r.destination,
  };
}

/**
 * DESTINATIONS says, per destination, what its URL field is called, what
 * it needs and whether the webhook's signing fields apply.
 */
const DESTINATIONS = {
  webhook: { name: "Webhook", label: "Webhook URL", hint: "Any receiver: Standard Webhooks signature and the default JSON payload.", url: "https://hooks.example.com/alerts", signed: true },
  slack: { name: "Slack", label: "Slack incoming webhook URL", hint: "A Block Kit message with a status colour, sent to a Slack incoming webhook.", url: "https://hooks.slack.com/services/T…/B…/…" },
  discord: { name: "Discord", label: "Discord webhook URL", hint: "An embed with colour, fields and the run link.", url: "https://discord.com/api/webhooks/…/…" },
  teams: { name: "Microsoft Teams", label: "Teams workflow URL", hint: "An Adaptive Card, for a Teams workflow “When a Teams webhook request is received”.", url: "https://….logic.azure.com/workflows/…" },
  googlechat: { name: "Google Chat", label: "Google Chat webhook URL", hint: "A card message for a Google Chat space's incoming webhook.", url: "https://chat.googleapis.com/v1/spaces/…/messages?key=…&token=…" },
  pagerduty: { name: "PagerDuty", label: "Events API URL", hint: "PagerDuty Events API v2: failures trigger, resolved and recovered resolve (same dedup_key).", url: "https://events.pagerduty.com/v2/enqueue (default)", key: true },
};

// ---------- rule editor ----------

function rulePage() {
  const form = $("#rule-form");
  const status = $("#rule-status");
  const formError = $("#form-error");
  let rule = null; // the stored rule, once there is one

  const num = (id) => {
    const v = $("#" + id).value.trim();
    return v === "" ? null : Number(v);
  };
  const str = (id) => $("#" + id).value.trim();

  // --- custom headers ---
  function addHeaderRow(name = "", stored = false) {
    const i = $$(".header-row", $("#headers")).length + 1;
    const row = h("div", { class: "header-row", dataset: { stored: stored ? "1" : "" } },
      h("label", { class: "visually-hidden", for: "hname-" + i }, `Header ${i} name`),
      h("input", { type: "text", id: "hname-" + i, class: "hname", value: name, placeholder: "X-Team", spellcheck: "false", readonly: stored }),
      h("label", { class: "visually-hidden", for: "hvalue-" + i }, `Header ${i} value`),
      h("input", { type: "password", id: "hvalue-" + i, class: "hvalue", autocomplete: "off", placeholder: stored ? "unchanged (stored, hidden)" : "value" }),
      h("button", { type: "button", class: "danger small", "aria-label": `Remove header ${name || i}`, onclick: () => { row.remove(); preview(); } }, "Remove"));
    $("#headers").append(row);
    return row;
  }

  function headersInput() {
    const out = {};
    for (const row of $$(".header-row", $("#headers"))) {
      const name = $(".hname", row).value.trim();
      const value = $(".hvalue", row).value;
      if (!name) continue;
      out[name] = value === "" && row.dataset.stored ? null : value;
    }
    return out;
  }

  // --- fill and read the form ---
  function fill(r) {
    rule = r;
    $("#rule-title").textContent = "Rule: " + r.name;
    document.title = r.name + " · meshhook-alerts";
    $("#project_id").value = r.project_id || "";
    $("#workflow_slug").value = r.workflow_slug || "";
    $("#name").value = r.name;
    $("#enabled").checked = r.enabled;
    const reason = $("#disabled-reason");
    reason.hidden = !r.disabled_reason;
    reason.textContent = r.disabled_reason ? "Disabled by the daemon: " + r.disabled_reason : "";
    for (const cb of $$('input[name="events"]')) cb.checked = r.events.includes(cb.value);
    $("#delay_threshold_seconds").value = r.delay_threshold_seconds ?? "";
    $("#stall_threshold_seconds").value = r.stall_threshold_seconds ?? "";
    $("#webhook_url").value = r.webhook_url_revealed ? r.webhook_url : "";
    $("#webhook_url").placeholder = r.webhook_url_revealed ? "" : "unchanged — type a new URL to replace it";
    const cur = $("#url-current");
    cur.hidden = false;
    cur.replaceChildren(r.webhook_url_revealed ? "Stored URL (shown in full)" : "Stored URL: ", r.webhook_url_revealed ? "" : urlCode(r.webhook_url));
    $("#reveal-url").hidden = r.webhook_url_revealed;
    $("#meshhook_signature").checked = r.meshhook_signature;
    $("#destination").value = r.destination || "webhook";
    // A PagerDuty rule without a URL of its own posts to PagerDuty's.
    $("#url_default").checked = r.destination === "pagerduty" && !r.webhook_url;
    $("#routing_key").value = "";
    $("#routing_key").placeholder = r.routing_key ? "unchanged (stored, sealed) — type a new key to replace it" : "";
    applyDestination();
    $("#headers").replaceChildren();
    for (const n of r.custom_header_names || []) addHeaderRow(n, true);
    $("#payload_template").value = r.payload_template || "";
    $("#throttle_max").value = r.throttle_max ?? "";
    $("#throttle_window_seconds").value = r.throttle_window_seconds ?? "";
    $("#secret-new").hidden = true;
    $("#delete").hidden = false;
    $("#secrets-card").hidden = false;
    $("#test-card").hidden = false;
    $("#rule-deliveries").href = "deliveries?config_id=" + encodeURIComponent(r.id);
    if (!$("#rule-charts")) $(".editor").after(chartsCard(r.id));
    renderSecrets();
  }

  /**
   * input is the form as a save body: only what the chosen destination
   * takes (its hidden fields may still hold what was typed before
   * switching, and are not sent).
   */
  function input() {
    const d = DESTINATIONS[$("#destination").value] || DESTINATIONS.webhook;
    const body = {
      project_id: str("project_id") || null,
      workflow_slug: str("workflow_slug") || null,
      name: str("name"),
      enabled: $("#enabled").checked,
      events: $$('input[name="events"]:checked').map((c) => c.value),
      delay_threshold_seconds: num("delay_threshold_seconds"),
      stall_threshold_seconds: num("stall_threshold_seconds"),
      meshhook_signature: d.signed ? $("#meshhook_signature").checked : false,
      payload_template: $("#payload_template").value.trim() === "" ? null : $("#payload_template").value,
      throttle_max: num("throttle_max"),
      throttle_window_seconds: num("throttle_window_seconds"),
      destination: $("#destination").value,
    };
    // Headers are a webhook's; a rule moving to a preset drops them.
    if (d.signed) body.custom_headers = headersInput();
    if (d.key && str("routing_key")) body.routing_key = str("routing_key");
    const url = useDefaultURL() ? "" : str("webhook_url");
    if (url || !rule || useDefaultURL()) body.webhook_url = url;
    if (rule) body.id = rule.id;
    else if (d.signed && $('input[name="secret_mode"]:checked').value === "given") body.signing_secrets = [str("signing_secret")];
    return body;
  }

  /** useDefaultURL reports whether a saved rule goes back to its destination's own endpoint. */
  function useDefaultURL() {
    return !$("#url-default-field").hidden && $("#url_default").checked;
  }

  // --- preview ---
  let previewSeq = 0;
  async function runPreview() {
    const seq = ++previewSeq;
    const out = $("#preview");
    const body = {
      event: $("#preview-event").value,
      name: str("name") || "Sample rule",
      project_id: str("project_id") || null,
      workflow_slug: str("workflow_slug") || null,
      payload_template: $("#payload_template").value.trim() === "" ? null : $("#payload_template").value,
      delay_threshold_seconds: num("delay_threshold_seconds"),
      stall_threshold_seconds: num("stall_threshold_seconds"),
      destination: $("#destination").value,
    };
    const url = useDefaultURL() ? "" : str("webhook_url");
    if (url) body.webhook_url = url;
    for (const k of ["delay_threshold_seconds", "stall_threshold_seconds"]) if (!(body[k] >= 1)) delete body[k];
    if (body.project_id && !UUID.test(body.project_id)) delete body.project_id;
    try {
      const p = await api("POST", "alerts/preview", body);
      if (seq !== previewSeq) return;
      out.replaceChildren(
        h("p", { class: "status ok", id: "preview-valid" }, "Valid JSON ✓"),
        h("h3", { class: "label" }, "URL"),
        h("pre", { id: "preview-url" }, p.url ?? "(the stored URL)"),
        h("h3", { class: "label" }, "Payload"),
        h("pre", { id: "preview-payload" }, JSON.stringify(p.payload, null, 2)));
    } catch (e) {
      if (seq !== previewSeq) return;
      const items = Object.entries(e.fields).map(([f, why]) => h("li", {}, h("strong", {}, f), ": ", why));
      out.replaceChildren(h("p", { class: "status error", id: "preview-error" }, "Cannot render: " + e.message),
        items.length ? h("ul", {}, items) : null);
    }
  }
  const preview = debounce(runPreview, 300);

  // --- destination: show only what it needs ---
  function applyDestination() {
    const d = DESTINATIONS[$("#destination").value] || DESTINATIONS.webhook;
    $("#destination-hint").textContent = d.hint;
    $("#webhook-url-label").textContent = d.label;
    $("#webhook-url-hint").hidden = !d.signed; // URL templates are for webhooks
    if (!rule || rule.webhook_url_revealed) $("#webhook_url").placeholder = d.url;
    $("#routing-key-field").hidden = !d.key;
    $("#url-default-field").hidden = !d.key || !rule; // a new rule's empty URL is the default already
    $("#webhook_url").disabled = useDefaultURL();
    $("#meshhook-signature-field").hidden = !d.signed;
    $("#headers-field").hidden = !d.signed;
    $("#secret-new").hidden = !!rule || !d.signed;
  }

  // --- secrets (rotation) ---
  function renderSecrets() {
    const ul = $("#secrets");
    const many = rule.signing_secrets.length > 1;
    ul.replaceChildren(...rule.signing_secrets.map((s) => h("li", { dataset: { fingerprint: s.fingerprint } },
      h("span", {}, h("code", {}, s.fingerprint), s.readable ? "" : h("span", { class: "field-error" }, " cannot be opened")),
      h("button", {
        type: "button", class: "danger small", disabled: !many, title: many ? null : "A rule keeps at least one secret: add one first",
        "aria-label": "Retire secret " + s.fingerprint, onclick: () => retire(s.fingerprint),
      }, "Retire"))));
  }

  function showSecretOnce(secret, fp) {
    $("#secret-once-value").textContent = secret;
    $("#secret-once-fp").textContent = fp ? "(fingerprint " + fp + ")" : "";
    $("#secret-once").hidden = false;
    $("#secret-once-done").focus();
  }
  $("#secret-once-done").addEventListener("click", () => {
    $("#secret-once-value").textContent = "";
    $("#secret-once").hidden = true;
  });

  async function addSecret() {
    const st = $("#secrets-status");
    setStatus(st, "Adding a secret…");
    try {
      const r = await api("POST", "alerts/config/" + encodeURIComponent(rule.id) + "/secrets", {});
      rule = r.rule;
      renderSecrets();
      setStatus(st, `Secret ${r.fingerprint} added. Switch your receiver to it, then retire the old one.`, "ok");
      showSecretOnce(r.signing_secret, r.fingerprint);
    } catch (e) {
      setStatus(st, "Could not add a secret: " + e.message, "error");
    }
  }

  async function retire(fp) {
    const st = $("#secrets-status");
    setStatus(st, "Retiring " + fp + "…");
    try {
      const r = await api("DELETE", "alerts/config/" + encodeURIComponent(rule.id) + "/secrets/" + encodeURIComponent(fp));
      rule = r.rule;
      renderSecrets();
      setStatus(st, `Secret ${fp} retired.`, "ok");
    } catch (e) {
      setStatus(st, `Could not retire ${fp}: ${e.message}`, "error");
    }
  }

  // --- test send ---
  async function sendTest() {
    const out = $("#test-result");
    const btn = $("#send-test");
    btn.disabled = true;
    out.replaceChildren(h("p", { class: "status" }, "Sending…"));
    try {
      const r = await api("POST", "alerts/test", { config_id: rule.id, event: $("#test-event").value });
      out.replaceChildren(h("dl", { class: "kv", id: "test-outcome" },
        h("dt", {}, "Result"), h("dd", {}, r.delivered ? badge("delivered", "ok") : badge("not delivered", "bad"), " ", r.outcome),
        h("dt", {}, "Status"), h("dd", { id: "test-status" }, r.status_code ?? "—"),
        h("dt", {}, "Latency"), h("dd", {}, r.latency_ms + " ms"),
        h("dt", {}, "URL"), h("dd", {}, h("code", {}, r.target_url)),
        h("dt", {}, "Signed"), h("dd", {}, r.signed ? "yes" : "no"),
        r.error ? [h("dt", {}, "Error"), h("dd", {}, r.error)] : null,
        h("dt", {}, "Response"), h("dd", {}, r.response_excerpt ? h("pre", {}, r.response_excerpt) : "—")));
    } catch (e) {
      out.replaceChildren(h("p", { class: "status error" }, "Could not send: " + e.message));
    } finally {
      btn.disabled = false;
    }
  }

  // --- save / delete ---
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearFieldErrors(form);
    const creating = !rule;
    const btn = $("#save");
    btn.disabled = true;
    setStatus(status, "Saving…");
    try {
      const r = await api("POST", "alerts/config", input());
      fill(r.rule);
      history.replaceState(null, "", "rule?id=" + encodeURIComponent(r.rule.id));
      setStatus(status, creating ? "Rule created." : "Rule saved.", "ok");
      if (r.signing_secret) showSecretOnce(r.signing_secret, r.rule.signing_secrets[0]?.fingerprint);
      $("#signing_secret").value = "";
    } catch (e) {
      setStatus(status, "Not saved: " + e.message, "error");
      if (e.fields) {
        const f = { ...e.fields };
        showFieldErrors(form, f, formError);
      }
    } finally {
      btn.disabled = false;
    }
  });

  $("#delete").addEventListener("click", () => {
    $("#delete").hidden = true;
    $("#delete-confirm").hidden = false;
    $("#delete-confirm").focus();
  });
  $("#delete-confirm").addEventListener("click", async () => {
    try {
      await api("DELETE", "alerts/config/" + encodeURIComponent(rule.id));
      location.assign("rules");
    } catch (e) {
      setStatus(status, "Could not delete: " + e.message, "error");
    }
  });

  $("#reveal-url").addEventListener("click", async () => {
    try {
      const r = await api("GET", "alerts/config" + query({ id: rule.id, reveal_url: "true" }));
      if (r.rules.length) fill(r.rules[0]);
    } catch (e) {
      setStatus(status, "Could not show the URL: " + e.message, "error");
    }
  });

  for (const radio of $$('input[name="secret_mode"]')) {
    radio.addEventListener("change", () => {
      $("#signing_secret").hidden = $('input[name="secret_mode"]:checked').value !== "given";
    });
  }
  $("#add-header").addEventListener("click", () => $(".hname", addHeaderRow()).focus());
  $("#add-secret").addEventListener("click", addSecret);
  $("#send-test").addEventListener("click", sendTest);
  form.addEventListener("input", preview);
  form.addEventListener("change", preview);
  $("#preview-event").addEventListener("change", runPreview);
  $("#destination").addEventListener("change", () => { applyDestination(); runPreview(); });
  $("#url_default").addEventListener("change", () => { applyDestination(); runPreview(); });
  applyDestination();

  (async () => {
    const params = new URLSearchParams(location.search);
    const id = params.get("id");
    if (id) {
      setStatus(status, "Loading the rule…");
      try {
        const r = await api("GET", "alerts/config" + query({ id }));
        if (!r.rules.length) throw new ApiError(404, "not_found", "rule " + id + " not found");
        fill(r.rules[0]);
        setStatus(status, "");
      } catch (e) {
        setStatus(status, "Could not load the rule: " + e.message, "error");
        return;
      }
    } else {
      $("#project_id").value = params.get("project_id") || "";
      $("#workflow_slug").value = params.get("workflow_slug") || "";
      $('input[name="events"][value="failed"]').checked = true;
    }
    runPreview();
  })();
}

// ---------- deliveries ----------

function deliveriesPage() {
  const form = $("#logs-filter");
  const status = $("#logs-status");
  const list = $("#logs");
  const older = $("#older");
  const params = new URLSearchParams(location.search);
  const open = new Set(); // alert ids whose attempts are shown
  const ruleNames = new Map();
  const rulesByID = new Map();
  let nameMaps = { projects: new Map() };
  let cursor = null;
  let timer = null;

  $("#l-project").value = params.get("project_id") || "";
  $("#l-workflow").value = params.get("workflow") || "";
  for (const s of (params.get("status") || "").split(",")) {
    const cb = $(`input[name="status"][value="${CSS.escape(s)}"]`);
    if (cb) cb.checked = true;
  }

  async function loadRules() {
    try {
      const r = await api("GET", "alerts/config");
      const sel = $("#l-rule");
      for (const rule of r.rules) {
        ruleNames.set(rule.id, rule.name);
        rulesByID.set(rule.id, rule);
        sel.append(h("option", { value: rule.id }, `${rule.name} (${rule.workflow_slug || "every workflow"})`));
      }
      sel.value = params.get("config_id") || "";
    } catch {
      // the list below reports errors
    }
  }

  function filters() {
    const project = $("#l-project").value.trim();
    const workflow = $("#l-workflow").value.trim();
    const toISO = (v) => (v ? new Date(v).toISOString() : "");
    const f = {
      project_id: project,
      config_id: $("#l-rule").value,
      status: $$('input[name="status"]:checked').map((c) => c.value).join(","),
      from: toISO($("#l-from").value),
      to: toISO($("#l-to").value),
      limit: "50",
    };
    if (workflow && UUID.test(workflow)) f.workflow_id = workflow;
    else f.workflow_slug = workflow;
    return f;
  }

  async function load(append = false) {
    clearFieldErrors(form);
    const f = filters();
    if (append && cursor) f.cursor = cursor;
    const shown = new URLSearchParams();
    for (const k of ["project_id", "config_id", "status"]) if (f[k]) shown.set(k, f[k]);
    if ($("#l-workflow").value.trim()) shown.set("workflow", $("#l-workflow").value.trim());
    history.replaceState(null, "", "deliveries" + (shown.toString() ? "?" + shown : ""));
    try {
      const r = await api("GET", "alerts/logs" + query(f));
      cursor = r.next_cursor;
      older.hidden = !cursor;
      const rows = r.alerts.flatMap(alertRows);
      if (append) {
        $("tbody", list)?.append(...rows);
      } else if (rows.length) {
        list.replaceChildren(table(null, ["Created", "Workflow", "Rule", "Event", "Status", "Attempts", "Next retry", "Last result", ""], rows));
      } else {
        const filtered = ["project_id", "config_id", "status", "from", "to", "workflow_id", "workflow_slug"].some((k) => f[k]);
        list.replaceChildren(h("div", { class: "empty", id: "logs-empty" }, filtered
          ? [h("p", {}, "No deliveries match these filters."),
            h("p", {}, "Clear a filter or widen the time range, then press Show. ", h("a", { href: "deliveries" }, "Show every delivery"), ".")]
          : [h("p", {}, "No deliveries yet."),
            h("p", {}, "A delivery appears here when a run matches one of your rules. ",
              h("a", { href: "rules" }, "Check your rules"), " or ", h("a", { href: "rule" }, "create one"),
              "; a rule's page can send a test alert to try the webhook.")]));
      }
      const n = $$("tr.alert", list).length;
      setStatus(status, `${n} deliver${n === 1 ? "y" : "ies"} shown · updated ${new Date().toLocaleTimeString()}`);
    } catch (e) {
      if (e.fields && Object.keys(e.fields).length) {
        const mapped = {};
        for (const [k, v] of Object.entries(e.fields)) mapped[k === "workflow_slug" || k === "workflow_id" ? "workflow" : k] = v;
        showFieldErrors(form, mapped);
      }
      setStatus(status, "Could not load deliveries: " + e.message, "error");
    }
  }

  function alertRows(a) {
    const id = "attempts-" + a.id;
    const toggle = h("button", {
      type: "button", class: "secondary small", "aria-expanded": open.has(a.id) ? "true" : "false", "aria-controls": id,
      onclick: () => {
        const shown = detail.hidden;
        detail.hidden = !shown;
        toggle.setAttribute("aria-expanded", String(shown));
        if (shown) open.add(a.id);
        else open.delete(a.id);
      },
    }, `${a.attempt_count}\u00a0attempt${a.attempt_count === 1 ? "" : "s"}`);
    const last = a.last_status_code ? "HTTP " + a.last_status_code : a.last_error || a.outcome_reason || "—";
    const row = h("tr", { class: "alert", dataset: { alertId: a.id, status: a.status } },
      cell("Created", timeEl(a.created_at)),
      cell("Workflow", a.workflow_slug ? workflowLabel(nameMaps, a.project_id, a.workflow_slug) : "—"),
      cell("Rule", h("a", { href: "rule?id=" + encodeURIComponent(a.config_id) }, ruleNames.get(a.config_id) || short(a.config_id))),
      cell("Event", a.event),
      cell("Status", badge(a.status)),
      cell("Attempts", toggle),
      cell("Next retry", a.status === "pending" || a.status === "delivering" ? timeEl(a.next_attempt_at) : "—"),
      cell("Last result", last),
      cell("Actions", redeliverButton(a)));
    const body = h("td", { class: "wide", colspan: "9" }, attemptsDetail(a));
    const detail = h("tr", { class: "attempts", id, hidden: !open.has(a.id) }, body);
    if (open.has(a.id)) loadDetail(a, body);
    toggle.addEventListener("click", () => { if (!detail.hidden) loadDetail(a, body); });
    return [row, detail];
  }

  function redeliverButton(a) {
    if (a.status !== "succeeded" && a.status !== "failed") return "";
    const btn = h("button", {
      type: "button", class: "small", "aria-label": "Redeliver alert " + short(a.id),
      onclick: async () => {
        btn.disabled = true;
        try {
          await api("POST", "alerts/logs/" + encodeURIComponent(a.id) + "/redeliver");
          setStatus(status, `Alert ${short(a.id)} queued for redelivery.`, "ok");
          load();
        } catch (e) {
          btn.disabled = false;
          setStatus(status, `Could not redeliver ${short(a.id)}: ${e.message}`, "error");
        }
      },
    }, "Redeliver");
    return btn;
  }

  const details = new Map(); // alert id → the full alert (with its payload), once loaded

  /** loadDetail fetches an alert with its payload and shows it in td. */
  async function loadDetail(a, td) {
    try {
      const full = details.get(a.id + "/" + a.attempt_count) || await api("GET", "alerts/logs/" + encodeURIComponent(a.id));
      details.set(a.id + "/" + a.attempt_count, full);
      td.replaceChildren(...attemptsDetail(full.alert || full));
    } catch (e) {
      td.append(h("p", { class: "status error" }, "Could not load the payload: " + e.message));
    }
  }

  /** headersSent lists the request headers of the alert's attempts, secret values masked. */
  function headersSent(a) {
    const rule = rulesByID.get(a.config_id);
    const masked = h("span", { class: "hint" }, "•••• (secret, not shown)");
    return h("dl", { class: "kv headers" },
      h("dt", {}, h("code", {}, "content-type")), h("dd", {}, h("code", {}, "application/json")),
      h("dt", {}, h("code", {}, "webhook-id")), h("dd", {}, h("code", {}, a.webhook_id)),
      h("dt", {}, h("code", {}, "webhook-timestamp")), h("dd", {}, "each attempt's start time, in Unix seconds"),
      h("dt", {}, h("code", {}, "webhook-signature")), h("dd", {}, masked.cloneNode(true)),
      rule && rule.meshhook_signature ? [h("dt", {}, h("code", {}, "x-meshhook-signature")), h("dd", {}, masked.cloneNode(true))] : null,
      (rule ? rule.custom_header_names || [] : []).map((n) => [h("dt", {}, h("code", {}, n)), h("dd", {}, masked.cloneNode(true))]));
  }

  function attemptsDetail(a) {
    const meta = h("dl", { class: "kv" },
      h("dt", {}, "Alert"), h("dd", {}, h("code", {}, a.id)),
      h("dt", {}, "Run"), h("dd", {}, h("code", {}, a.run_id)),
      h("dt", {}, "Webhook id"), h("dd", {}, h("code", {}, a.webhook_id)),
      h("dt", {}, "Target"), h("dd", {}, urlCode(a.target_url)),
      h("dt", {}, "Outcome"), h("dd", {}, a.outcome_reason || "—"));
    const timeline = a.attempts.length
      ? h("ol", { class: "timeline", "aria-label": "Attempts" }, a.attempts.map((t) => {
        const ok = t.outcome === "ok";
        return h("li", { class: "attempt " + (ok ? "ok" : "bad") },
          h("p", { class: "when" }, h("strong", {}, "Attempt " + t.attempt), " · ", timeEl(t.started_at)),
          h("p", {}, badge(t.outcome, ok ? "ok" : "bad"), " ",
            h("span", { class: "code" }, t.status_code ? "HTTP " + t.status_code : "no response"), " · ",
            h("span", { class: "latency" }, t.latency_ms + "\u00a0ms")),
          t.error ? h("p", { class: "field-error" }, t.error) : null,
          t.response_excerpt ? h("pre", { class: "excerpt" }, t.response_excerpt) : null);
      }))
      : h("p", { class: "hint" }, a.status === "pending" ? "No attempts yet: the first is due " + fmtTime(a.next_attempt_at) + "." : "No attempts.");
    return [meta,
      h("h3", { class: "label" }, "Attempts"), timeline,
      h("h3", { class: "label" }, "Headers sent"), headersSent(a),
      h("h3", { class: "label" }, "Payload"),
      a.payload !== undefined ? h("pre", { class: "payload" }, JSON.stringify(a.payload, null, 2)) : h("p", { class: "hint" }, "Loading…")];
  }

  function schedule() {
    clearInterval(timer);
    if ($("#auto-refresh").checked) timer = setInterval(() => { if (!document.hidden) load(); }, 3000);
  }

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    cursor = null;
    load();
  });
  older.addEventListener("click", () => load(true));
  $("#auto-refresh").addEventListener("change", schedule);
  Promise.all([loadRules(), names().then((n) => { nameMaps = n; })]).then(() => load());
  schedule();
}

// ---------- health ----------

/** fmtAge says how long ago a number of seconds is, in words. */
function fmtAge(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  const s = Math.round(seconds);
  if (s < 90) return s + " s";
  if (s < 5400) return Math.round(s / 60) + " min";
  if (s < 172800) return (s / 3600).toFixed(1) + " h";
  return Math.round(s / 86400) + " days";
}

function healthPage() {
  const out = $("#health");
  const status = $("#health-status");

  function card(title, id, ...body) {
    return h("section", { class: "card", "aria-label": title, id }, h("h2", {}, title), ...body);
  }
  function kv(pairs) {
    return h("dl", { class: "kv" }, pairs.filter(Boolean).flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
  }
  const num = (id, v) => h("span", { id }, v === null || v === undefined ? "—" : String(v));

  /** verdict is the page's headline: is delivery working right now? */
  function verdict(s) {
    const b = s.backlog;
    const d = s.deliveries;
    const open = (s.circuits || []).filter((c) => c.state !== "closed").length;
    if (!s.database.reachable) {
      return [badge("database unreachable", "bad"),
        "Alerts already read keep being sent; new changes and retries wait until the database answers. " +
        "The counts below are missing until then."];
    }
    const why = [];
    if (b.retrying) why.push(`${b.retrying} alert${b.retrying === 1 ? " is" : "s are"} retrying after failed attempts`);
    if (d.failed) why.push(`${d.failed} gave up in the last ${Math.round(d.window_seconds / 60)} min`);
    if (open) why.push(`${open} endpoint${open === 1 ? "'s" : "s'"} circuit open`);
    if (s.realtime && !s.realtime.subscribed) why.push("Realtime is not subscribed (reconciliation still finds every change)");
    if (why.length) return [badge("failing", "bad"), why.join("; ") + ". See the deliveries for the errors."];
    if (b.pending > 0 && (b.oldest_pending_age_seconds || 0) > 300) {
      return [badge("slow", "warn"), `The oldest pending alert waits for ${fmtAge(b.oldest_pending_age_seconds)}.`];
    }
    return [badge("working", "ok"), "No failed attempts waiting and nothing given up within the window."];
  }

  function render(s) {
    const rt = s.realtime;
    const b = s.backlog;
    const d = s.deliveries;
    const [vbadge, vtext] = verdict(s);
    const windowMin = d ? Math.round(d.window_seconds / 60) + " min" : "";
    const cards = [
      card("Delivery", "health-delivery",
        h("p", { class: "big", id: "health-verdict" }, vbadge),
        h("p", { id: "health-verdict-why" }, vtext),
        kv([["Database", h("span", { id: "health-database" },
          s.database.reachable ? badge("reachable", "ok") : badge("unreachable", "bad"))],
        s.database.error ? ["Why", h("span", { id: "health-database-error" }, s.database.error)] : null])),
      card("Not delivered yet", "health-backlog",
        b ? kv([
          ["Pending", num("health-pending", b.pending)],
          ["Retrying", num("health-retrying", b.retrying)],
          ["Being sent", num("health-delivering", b.delivering)],
          ["Oldest pending", h("span", { id: "health-oldest" }, b.oldest_pending_at
            ? [fmtAge(b.oldest_pending_age_seconds), " (", timeEl(b.oldest_pending_at), ")"] : "none")],
        ]) : h("p", { class: "hint" }, "Unknown while the database is unreachable."),
        b && b.retrying ? h("p", {}, h("a", { href: "deliveries?status=pending" }, "See the retrying alerts and their errors")) : null),
      card("Finished in the last " + (windowMin || "hour"), "health-finished",
        d ? kv([
          ["Succeeded", num("health-succeeded", d.succeeded)],
          ["Failed (gave up)", num("health-failing", d.failed)],
          ["Suppressed (throttled)", num("health-suppressed", d.suppressed)],
          ["Success rate", h("span", { id: "health-rate" }, d.success_rate === null ? "— (none finished)" : (d.success_rate * 100).toFixed(1) + " %")],
        ]) : h("p", { class: "hint" }, "Unknown while the database is unreachable."),
        d && b && b.retrying ? h("p", { class: "hint" }, "Retrying alerts count here only once they finish.") : null),
      card("Endpoints", "health-circuits", circuits(s)),
      card("Realtime", "health-rt",
        h("p", { class: "big", id: "health-realtime" }, rt ? (rt.subscribed ? badge("subscribed", "ok") : badge("not subscribed", "bad")) : "—"),
        rt && rt.channels ? kv([
          ["Last event", timeEl(rt.last_event_at)],
          ["Channels", rt.channels.length ? rt.channels.map((c) => h("div", {}, h("code", {}, c.name), " ", badge(c.state, c.state === "subscribed" ? "ok" : "warn"))) : "none"],
          ["Last error", rt.last_error || "—"],
        ]) : h("p", { class: "hint" }, rt ? "Connection details are shown to the operator." : "Not reported by this daemon.")),
      card("Reconciliation", "health-rc",
        h("p", { class: "big", id: "health-reconcile" }, s.reconcile
          ? (s.reconcile.last_error ? badge("failing", "bad") : !s.reconcile.held ? badge("another daemon", "ok")
            : s.reconcile.lag_seconds > 60 ? badge("lagging", "warn") : badge("up to date", "ok"))
          : "—"),
        s.reconcile ? kv([
          ["Behind the database", s.reconcile.held ? fmtAge(s.reconcile.lag_seconds) : "—"],
          ["Alerts Realtime missed", s.reconcile.found_alerts],
          ["Last error", s.reconcile.last_error || "—"],
        ]) : h("p", { class: "hint" }, "Shown to the operator: every change is found in the database even when Realtime loses it.")),
      card("Rules", "health-rules", rulesSection(s)),
    ];
    out.replaceChildren(...cards);
  }

  function circuits(s) {
    if (!s.circuits) return h("p", { class: "hint" }, "Each endpoint's circuit breaker is shown to the operator.");
    if (!s.circuits.length) return h("p", { id: "health-circuits-none" }, "Every endpoint answers: no failed attempts pending.");
    return h("ul", { class: "plain", id: "health-circuit-list" }, s.circuits.map((c) => h("li", { dataset: { endpointId: c.endpoint_id } },
      h("span", {}, urlCode(c.target), " ", h("code", { class: "hint", title: "endpoint_id in the daemon's log" }, c.endpoint_id)),
      h("span", {}, badge(c.state.replace("_", "-"), c.state === "closed" ? "warn" : "bad"), " ",
        `${c.consecutive_failures} failed in a row`,
        c.open_until ? [", paused until ", timeEl(c.open_until)] : ""))));
  }

  function rulesSection(s) {
    if (!s.rules) return h("p", { class: "hint" }, s.database.reachable ? "Not reported by this daemon." : "Unknown while the database is unreachable.");
    const rej = s.rules.rejected_rules || [];
    return [
      kv([["Loaded", num("health-loaded", s.rules.loaded)], ["Rejected", num("health-rejected", s.rules.rejected)]]),
      rej.length ? h("ul", { class: "plain", id: "health-rejected-list" }, rej.map((r) => h("li", {},
        h("a", { href: "rule?id=" + encodeURIComponent(r.id), title: r.id }, "Rule " + short(r.id)),
        h("span", { class: "field-error" }, r.reason)))) : null,
      rej.length ? h("p", { class: "hint" }, "Open a rejected rule to fix it; the daemon loads it again once it is saved.") : null,
    ];
  }

  async function load() {
    try {
      const s = await api("GET", "status");
      render(s);
      setStatus(status, `As of ${fmtTime(s.generated_at)}; ${s.caller.operator ? "all projects" : "your projects"}. Refreshes every 10 s.`);
    } catch (e) {
      setStatus(status, "Could not load the status: " + e.message, "error");
    }
  }
  load();
  setInterval(() => { if (!document.hidden) load(); }, 10000);
  out.after(chartsCard());
}

// ---------- start ----------

const pages = { signin: signinPage, rules: rulesPage, rule: rulePage, deliveries: deliveriesPage, health: healthPage };

function start() {
  const page = document.body.dataset.page;
  if (page !== "signin" && !token()) {
    location.replace("./");
    return;
  }
  if (page !== "signin") scheduleRefresh();
  chrome(page);
  pages[page]?.();
}

start();
export { ApiError, EVENTS };

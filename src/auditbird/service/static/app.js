/* auditbird web viewer. Vanilla JS, no build step, no network beyond this server.
 *
 * State lives in the URL (filters) and sessionStorage (the credential: an API key or a viewer
 * link token). The server tells us, in /v1/viewer/session, which endpoints to read.
 */
"use strict";
(() => {
  const $ = (sel, root = document) => root.querySelector(sel);
  const { el } = window.auditbirdDom; // dom.js
  const CRED_KEY = "auditbird.credential";
  const THEME_KEY = "auditbird.theme";
  const FIRST_PAGE = 100;
  const NEXT_PAGE = 250;
  const RANGES = { "1h": 3600e3, "24h": 86400e3, "7d": 7 * 86400e3, "30d": 30 * 86400e3 };
  const DEFAULT_RANGE = "7d";

  const state = {
    credential: null,
    session: null,
    filters: emptyFilters(),
    rows: [], // events in the table, newest first
    byUid: new Map(),
    cursor: null,
    generation: 0,
    loading: false,
    done: false,
    abort: null,
    zoomStack: [],
    live: null,
    knownActions: new Map(), // action -> count (or 0 when only registered)
    current: -1, // keyboard row index
    openUid: null,
  };
  // Numbers the browser tests read (and a person can read in the console).
  const perf = (window.__auditbird = {
    firstRowsMs: null, queries: [], pages: 0, ready: false, live: 0, refreshes: 0, charts: 0,
    uids: () => state.rows.map((e) => e.uid),
    count: () => state.rows.length,
  });

  function emptyFilters() {
    return { actions: [], actor: "", ttype: "", tid: "", eventId: "", q: "", range: DEFAULT_RANGE, since: null, until: null };
  }

  // ---------------------------------------------------------------- time
  const fmtUTC = (ms) => new Date(ms).toISOString().replace("T", " ").replace(".000Z", "Z");
  const fmtLocal = (ms) => new Date(ms).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" });
  const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: "auto", style: "short" });
  function relative(ms, now = Date.now()) {
    const s = Math.round((ms - now) / 1000);
    const a = Math.abs(s);
    if (a < 45) return s <= 0 ? "just now" : rtf.format(s, "second");
    if (a < 2700) return rtf.format(Math.round(s / 60), "minute");
    if (a < 64800) return rtf.format(Math.round(s / 3600), "hour");
    if (a < 30 * 86400) return rtf.format(Math.round(s / 86400), "day");
    return new Date(ms).toLocaleDateString(undefined, { dateStyle: "medium" });
  }
  const toLocalInput = (ms) => {
    const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60e3);
    return d.toISOString().slice(0, 19);
  };
  const fromLocalInput = (v) => (v ? new Date(v).getTime() : null);
  const isoParam = (ms) => new Date(ms).toISOString();
  function parseTimeParam(v) {
    if (!v) return null;
    if (/^\d+$/.test(v)) return Number(v);
    const t = Date.parse(v);
    return Number.isNaN(t) ? null : t;
  }

  // ---------------------------------------------------------------- colours
  function hash(s) {
    let h = 2166136261;
    for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
    return h >>> 0;
  }
  const resourceOf = (action) => (action.includes(".") ? action.slice(0, action.lastIndexOf(".")) : action);
  // Well-separated hues; a resource keeps its hue everywhere (badges, chart, legend). The salt
  // gives the common resources distinct hues (monitor blue, incident red, page orange, ...).
  const HUES = [28, 145, 295, 165, 330, 0, 235, 48, 265, 185, 85, 212];
  const hueOf = (action) => HUES[hash("24:" + resourceOf(action)) % HUES.length];
  function actionColour(action, shade = hash(action.slice(action.lastIndexOf(".") + 1)) % 4, shades = 4) {
    // One hue per resource; its verbs step through lightness, so a stack stays readable.
    const t = shades > 1 ? shade / (shades - 1) : 0.5;
    return { h: hueOf(action), s: 68 - t * 18, l: 34 + t * 36 };
  }
  function chartColours(actions) {
    const byResource = new Map();
    for (const a of [...actions].sort()) {
      const r = resourceOf(a);
      if (!byResource.has(r)) byResource.set(r, []);
      byResource.get(r).push(a);
    }
    const out = new Map();
    for (const verbs of byResource.values()) verbs.forEach((a, i) => out.set(a, actionColour(a, i, verbs.length)));
    return out;
  }
  function badge(action) {
    const b = el("span", { class: "badge", text: action, title: `resource: ${resourceOf(action)}` });
    b.style.setProperty("--h", String(hueOf(action)));
    return b;
  }

  // ---------------------------------------------------------------- URL <-> filters
  function readURL() {
    const p = new URLSearchParams(location.search);
    const f = emptyFilters();
    f.actions = p.getAll("action").filter(Boolean);
    f.actor = p.get("actor") || "";
    f.ttype = p.get("target_type") || "";
    f.tid = p.get("target_id") || "";
    f.eventId = p.get("event_id") || p.get("subject") || ""; // `subject`: what older page URLs call it
    f.q = p.get("q") || "";
    const range = p.get("range");
    f.since = parseTimeParam(p.get("since"));
    f.until = parseTimeParam(p.get("until"));
    if (range && (range in RANGES || range === "all" || range === "custom")) f.range = range;
    else if (f.since !== null || f.until !== null) f.range = "custom";
    state.openUid = p.get("event");
    return f;
  }
  function filtersToURL(f, extra = {}) {
    const p = new URLSearchParams();
    for (const a of f.actions) p.append("action", a);
    if (f.actor) p.set("actor", f.actor);
    if (f.ttype) p.set("target_type", f.ttype);
    if (f.tid) p.set("target_id", f.tid);
    if (f.eventId) p.set("event_id", f.eventId);
    if (f.q) p.set("q", f.q);
    if (f.range !== DEFAULT_RANGE) p.set("range", f.range);
    if (f.range === "custom") {
      if (f.since !== null) p.set("since", isoParam(f.since));
      if (f.until !== null) p.set("until", isoParam(f.until));
    }
    for (const [k, v] of Object.entries(extra)) if (v) p.set(k, v);
    const qs = p.toString();
    return location.pathname + (qs ? "?" + qs : "");
  }
  function writeURL(push = false) {
    const url = filtersToURL(state.filters, { event: state.openUid });
    if (url === location.pathname + location.search) return;
    history[push ? "pushState" : "replaceState"](null, "", url);
  }
  function timeWindow(f = state.filters) {
    if (f.range in RANGES) return { since: Date.now() - RANGES[f.range], until: null };
    if (f.range === "custom") return { since: f.since, until: f.until };
    return { since: null, until: null };
  }
  function apiParams(f = state.filters) {
    const p = new URLSearchParams();
    for (const a of f.actions) p.append("action", a);
    if (f.actor) p.set("actor_id", f.actor);
    if (f.ttype) p.set("target_type", f.ttype);
    if (f.tid) p.set("target_id", f.tid);
    if (f.eventId) p.set("event_id", f.eventId);
    if (f.q) p.set("text", f.q);
    const w = timeWindow(f);
    if (w.since !== null) p.set("since", String(Math.floor(w.since)));
    if (w.until !== null) p.set("until", String(Math.floor(w.until)));
    return p;
  }

  // ---------------------------------------------------------------- HTTP
  class HttpError extends Error {
    constructor(status, problem) {
      super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
      this.status = status;
      this.problem = problem;
    }
  }
  async function api(path, { signal, params, accept = "application/json" } = {}) {
    const url = params && [...params].length ? `${path}?${params}` : path;
    const res = await fetch(url, {
      headers: { Authorization: `Bearer ${state.credential}`, Accept: accept },
      signal,
      cache: "no-store",
    });
    if (!res.ok) {
      let problem = null;
      try { problem = await res.json(); } catch (_) { /* not JSON */ }
      if (res.status === 401) signOut(problem && (problem.detail || problem.title) || "Your session has ended; sign in again.");
      throw new HttpError(res.status, problem);
    }
    return res;
  }
  const endpoint = (name) => state.session.endpoints[name];

  // ---------------------------------------------------------------- sign-in
  async function boot() {
    applyTheme(localStorage.getItem(THEME_KEY) || (matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light"));
    const hash = new URLSearchParams(location.hash.slice(1));
    if (hash.get("vl")) {
      sessionStorage.setItem(CRED_KEY, hash.get("vl"));
      history.replaceState(null, "", location.pathname + location.search); // the token leaves the address bar
    }
    state.credential = sessionStorage.getItem(CRED_KEY);
    state.filters = readURL();
    wireUI();
    if (state.credential) await startSession();
    else showSignIn("");
  }
  function showSignIn(message) {
    $("#viewer").hidden = true;
    $("#toolbar").hidden = true;
    $("#who").hidden = true;
    $("#signin").hidden = false;
    $("#signin-error").textContent = message || "";
    $("#api-key").focus();
  }
  async function startSession() {
    let res;
    try {
      res = await fetch("v1/viewer/session", { headers: { Authorization: `Bearer ${state.credential}` }, cache: "no-store" });
    } catch (e) {
      return showSignIn("The server cannot be reached.");
    }
    if (!res.ok) {
      let detail = "";
      try { const p = await res.json(); detail = p.detail || p.title || ""; } catch (_) { /* ignore */ }
      sessionStorage.removeItem(CRED_KEY);
      state.credential = null;
      return showSignIn(res.status === 403 ? `This key cannot read the log. ${detail}` : detail || "That key was not accepted.");
    }
    state.session = await res.json();
    sessionStorage.setItem(CRED_KEY, state.credential);
    $("#signin").hidden = true;
    $("#viewer").hidden = false;
    $("#toolbar").hidden = false;
    $("#signout").hidden = false;
    renderWho();
    renderRestriction();
    syncForm();
    await refresh();
    loadActions();
    if (state.openUid) openDetail(state.openUid);
    perf.ready = true;
  }
  function renderWho() {
    const s = state.session;
    const who = $("#who");
    who.hidden = false;
    who.replaceChildren(
      "Workspace ", el("strong", { text: s.workspace || "(default)" }),
      ` · ${s.kind === "viewer_link" ? "viewer link" : "API key"} · ${s.scope}`,
      s.expires_at ? ` · expires ${relative(s.expires_at)}` : "",
    );
    who.title = s.expires_at ? `Access expires ${fmtUTC(s.expires_at)} (${fmtLocal(s.expires_at)})` : "";
  }
  function renderRestriction() {
    const r = state.session.restrict || {};
    const parts = [];
    if (r.actor_id) parts.push(`actor ${r.actor_id}`);
    if (r.target_type || r.target_id) parts.push(`target ${r.target_type || "*"}:${r.target_id || "*"}`);
    const box = $("#restriction");
    box.hidden = parts.length === 0;
    box.textContent = parts.length ? `This link shows only events of ${parts.join(" and ")}.` : "";
    for (const [id, key] of [["#f-actor", "actor_id"], ["#f-ttype", "target_type"], ["#f-tid", "target_id"]]) {
      const input = $(id);
      if (r[key]) { input.value = r[key]; input.disabled = true; }
    }
  }
  function signOut(message) {
    stopLive();
    sessionStorage.removeItem(CRED_KEY);
    state.credential = null;
    state.session = null;
    closeDetail();
    showSignIn(message || "");
  }

  // ---------------------------------------------------------------- loading
  async function refresh({ chart = true } = {}) {
    const gen = ++state.generation;
    if (state.abort) state.abort.abort();
    state.abort = new AbortController();
    state.cursor = null;
    state.done = false;
    state.current = -1;
    const t0 = performance.now();
    setStatus("Loading…");
    try {
      const page = await fetchPage(null, FIRST_PAGE, state.abort.signal);
      if (gen !== state.generation) return;
      resetRows();
      appendRows(page.events);
      state.cursor = page.next_cursor || null;
      state.done = !state.cursor;
      const ms = performance.now() - t0;
      perf.queries.push(Math.round(ms));
      if (perf.firstRowsMs === null) {
        perf.firstRowsMs = -1;
        requestAnimationFrame(() => { perf.firstRowsMs = Math.round(performance.now()); });
      }
      updateStatus();
      // The chart asks after the rows: on one SQLite file, reads queue, and rows matter first.
      if (chart) loadChart(gen);
      if (state.live) restartLive();
    } catch (e) {
      if (e.name === "AbortError" || gen !== state.generation) return;
      resetRows();
      setStatus(e instanceof HttpError ? `Cannot load events: ${e.message}` : "Cannot load events.");
    }
    perf.refreshes++;
  }
  async function fetchPage(cursor, limit, signal) {
    const params = apiParams();
    params.set("limit", String(limit));
    if (cursor) params.set("cursor", cursor);
    const res = await api(endpoint("events"), { params, signal });
    const body = await res.json();
    perf.pages++;
    return { events: body.events || body.data || [], next_cursor: body.next_cursor || null };
  }
  async function loadMore() {
    if (state.loading || state.done || !state.cursor || !state.session) return;
    state.loading = true;
    const gen = state.generation;
    setStatus("Loading more…");
    try {
      const page = await fetchPage(state.cursor, NEXT_PAGE, state.abort.signal);
      if (gen !== state.generation) return;
      appendRows(page.events);
      state.cursor = page.next_cursor || null;
      state.done = !state.cursor;
      updateStatus();
    } catch (e) {
      if (e.name !== "AbortError") setStatus(`Cannot load more: ${e.message}`);
    } finally {
      state.loading = false;
    }
    // A tall screen may still show the sentinel: keep filling it.
    requestAnimationFrame(() => { if (sentinelVisible()) loadMore(); });
  }
  function sentinelVisible() {
    const r = $("#sentinel").getBoundingClientRect();
    return r.top < innerHeight + 800;
  }
  function updateStatus() {
    const n = state.rows.length;
    $("#count").textContent = `${n.toLocaleString()}${state.done ? "" : "+"} shown`;
    $("#events").setAttribute("aria-rowcount", state.done ? String(n + 1) : "-1");
    setStatus(n === 0 ? "No events match these filters." : state.done ? "End of the log for these filters." : "");
  }
  const setStatus = (text) => { $("#status").textContent = text; };

  // ---------------------------------------------------------------- table
  function targetsText(targets) {
    return (targets || []).map((t) => `${t.type || t.name || "?"}:${t.id}`);
  }
  function renderRow(ev) {
    const when = el("time", { datetime: new Date(ev.timestamp).toISOString(), text: relative(ev.timestamp) });
    const timeCell = el("span", { role: "cell", title: `${fmtUTC(ev.timestamp)} UTC\n${fmtLocal(ev.timestamp)} local` }, when);
    const actor = ev.actor || {};
    const actorCell = el("span", { role: "cell", title: actor.id ? `id ${actor.id}` : "" },
      actor.name || actor.id || "system", actor.type ? el("span", { class: "actor-type", text: actor.type }) : null);
    const tg = targetsText(ev.targets);
    const targetCell = el("span", { role: "cell", title: tg.join(", ") }, ...tg.slice(0, 3).map((t) => el("span", { class: "tgt", text: t })),
      tg.length > 3 ? `+${tg.length - 3}` : null);
    const actionCell = el("span", { role: "cell" }, badge(ev.action),
      ev.schema_error ? el("span", { class: "warn", title: ev.schema_error, text: "⚠ schema" }) : null);
    const row = el("div", {
      class: "row", role: "row", tabindex: "-1", "data-uid": ev.uid,
      "aria-label": `${ev.action} on ${ev.id} by ${actor.name || actor.id || "system"}, ${fmtUTC(ev.timestamp)}`,
    }, timeCell, actionCell, actorCell, el("span", { role: "cell", class: "mono", title: ev.id, text: ev.id }), targetCell);
    return row;
  }
  // The table is virtual: only the rows on screen (and a few either side) are in the DOM, so
  // ten thousand loaded events cost what forty do. Rows have a fixed height (--row-h).
  const view = { nodes: new Map(), fresh: new Set(), height: 36, scheduled: false };
  function rowHeight() {
    const v = parseFloat(getComputedStyle($("#rows")).getPropertyValue("--row-h"));
    return Number.isFinite(v) && v > 0 ? v : 36;
  }
  function resetRows() {
    state.rows = [];
    state.byUid.clear();
    view.nodes.clear();
    view.fresh.clear();
    $("#rows").replaceChildren();
    layoutRows();
  }
  function layoutRows() {
    view.height = rowHeight();
    $("#rows").style.height = `${state.rows.length * view.height}px`;
    scheduleRender();
  }
  function scheduleRender() {
    if (view.scheduled) return;
    view.scheduled = true;
    requestAnimationFrame(() => { view.scheduled = false; renderWindow(); });
  }
  function renderWindow(force = false) {
    const box = $("#rows");
    const h = view.height;
    const top = -box.getBoundingClientRect().top;
    const first = Math.max(0, Math.floor(top / h) - 10);
    const last = Math.min(state.rows.length - 1, Math.ceil((top + innerHeight) / h) + 10);
    for (const [i, node] of view.nodes) {
      if (force || i < first || i > last || node.dataset.uid !== (state.rows[i] && state.rows[i].uid)) {
        node.remove();
        view.nodes.delete(i);
      }
    }
    const frag = document.createDocumentFragment();
    for (let i = first; i <= last; i++) {
      if (view.nodes.has(i)) continue;
      const ev = state.rows[i];
      const node = renderRow(ev);
      node.dataset.index = String(i);
      node.setAttribute("aria-rowindex", String(i + 2));
      node.style.transform = `translateY(${i * h}px)`;
      if (view.fresh.has(ev.uid)) node.classList.add("fresh");
      view.nodes.set(i, node);
      frag.append(node);
    }
    box.append(frag);
    const focusable = state.current >= 0 ? state.current : 0;
    for (const [i, node] of view.nodes) {
      node.tabIndex = i === focusable ? 0 : -1;
      node.classList.toggle("current", i === state.current);
    }
  }
  function appendRows(events) {
    for (const ev of events) {
      if (state.byUid.has(ev.uid)) continue;
      state.byUid.set(ev.uid, ev);
      state.rows.push(ev);
      noteAction(ev.action);
    }
    layoutRows();
  }
  function prependRows(events) {
    // Live tail: events arrive oldest first; each goes on top.
    let added = 0;
    for (const ev of events) {
      if (state.byUid.has(ev.uid)) continue;
      state.byUid.set(ev.uid, ev);
      state.rows.unshift(ev);
      view.fresh.add(ev.uid);
      noteAction(ev.action);
      added++;
    }
    if (!added) return;
    if (state.current >= 0) state.current += added;
    // Someone reading further down keeps their place; at the top, new events simply appear.
    const below = $("#rows").getBoundingClientRect().top < 0;
    layoutRows();
    renderWindow(true);
    if (below) window.scrollBy(0, added * view.height);
    setTimeout(() => { for (const ev of events) view.fresh.delete(ev.uid); }, 3000);
    perf.live += added;
    $("#live-news").textContent = `${added} new event${added > 1 ? "s" : ""} at ${new Date().toLocaleTimeString()}`;
    updateStatus();
  }
  function focusRow(i) {
    const n = state.rows.length;
    if (!n) return;
    i = Math.max(0, Math.min(n - 1, i));
    state.current = i;
    const box = $("#rows");
    const y = box.getBoundingClientRect().top + i * view.height;
    const headroom = $(".top").offsetHeight + view.height + 8; // the sticky bar and column heads
    if (y < headroom) window.scrollBy(0, y - headroom);
    else if (y + view.height > innerHeight) window.scrollBy(0, y + view.height - innerHeight);
    renderWindow();
    const row = view.nodes.get(i);
    if (row) row.focus({ preventScroll: true });
    if (i > n - 20) loadMore();
  }

  // ---------------------------------------------------------------- actions multi-select
  function noteAction(action, count) {
    if (!state.knownActions.has(action)) state.knownActions.set(action, count || 0);
    else if (count) state.knownActions.set(action, Math.max(count, state.knownActions.get(action)));
  }
  async function loadActions() {
    try {
      const res = await api(endpoint("actions"));
      const body = await res.json();
      for (const name of body.registered || []) noteAction(name, 0);
      for (const [name, n] of Object.entries(body.seen || {})) noteAction(name, n);
      for (const a of state.filters.actions) noteAction(a, 0);
      renderActionOptions();
    } catch (_) { /* the table still works without the list */ }
  }
  function renderActionOptions() {
    const filter = $("#action-search").value.trim().toLowerCase();
    const box = $("#action-options");
    const selected = new Set(state.filters.actions);
    const names = [...state.knownActions.keys()].sort();
    box.replaceChildren(...names.filter((n) => !filter || n.toLowerCase().includes(filter)).map((name) => {
      const cb = el("input", { type: "checkbox", value: name, checked: selected.has(name) });
      const count = state.knownActions.get(name);
      return el("label", {}, cb, badge(name), count ? el("span", { class: "count", text: count.toLocaleString() }) : null);
    }));
    if (!box.children.length) box.append(el("p", { class: "muted", text: "No actions found." }));
    updateActionButton();
  }
  function updateActionButton() {
    const a = state.filters.actions;
    const b = $("#action-button");
    b.textContent = a.length === 0 ? "All actions" : a.length === 1 ? a[0] : `${a.length} actions`;
    b.title = a.join(", ");
  }
  function setMenu(button, pop, open) {
    pop.hidden = !open;
    button.setAttribute("aria-expanded", String(open));
  }

  // ---------------------------------------------------------------- filters form
  function syncForm() {
    const f = state.filters;
    const r = (state.session && state.session.restrict) || {};
    $("#f-actor").value = r.actor_id || f.actor;
    $("#f-ttype").value = r.target_type || f.ttype;
    $("#f-tid").value = r.target_id || f.tid;
    $("#f-event-id").value = f.eventId;
    $("#f-text").value = f.q;
    for (const radio of document.querySelectorAll('input[name="range"]')) radio.checked = radio.value === f.range;
    $("#custom-range").hidden = f.range !== "custom";
    if (f.range === "custom") {
      $("#f-since").value = f.since !== null ? toLocalInput(f.since) : "";
      $("#f-until").value = f.until !== null ? toLocalInput(f.until) : "";
    }
    $("#zoom-out").hidden = state.zoomStack.length === 0;
    updateActionButton();
  }
  function readForm() {
    const f = state.filters;
    const r = (state.session && state.session.restrict) || {};
    f.actor = r.actor_id ? "" : $("#f-actor").value.trim();
    f.ttype = r.target_type ? "" : $("#f-ttype").value.trim();
    f.tid = r.target_id ? "" : $("#f-tid").value.trim();
    f.eventId = $("#f-event-id").value.trim();
    f.q = $("#f-text").value.trim();
    const checked = document.querySelector('input[name="range"]:checked');
    f.range = checked ? checked.value : DEFAULT_RANGE;
    if (f.range === "custom") {
      f.since = fromLocalInput($("#f-since").value);
      f.until = fromLocalInput($("#f-until").value);
    }
  }
  let debounce = 0;
  function filtersChanged({ immediate = false, push = false } = {}) {
    clearTimeout(debounce);
    const run = () => {
      readForm();
      writeURL(push);
      $("#custom-range").hidden = state.filters.range !== "custom";
      refresh();
    };
    if (immediate) run();
    else debounce = setTimeout(run, 250);
  }

  // ---------------------------------------------------------------- chart
  async function loadChart(gen) {
    const box = $("#chart");
    const buckets = Math.max(12, Math.min(90, Math.floor(box.clientWidth / 14)));
    const params = apiParams();
    params.set("buckets", String(buckets));
    try {
      const res = await api(endpoint("histogram"), { params, signal: state.abort.signal });
      const h = await res.json();
      if (gen !== state.generation) return;
      drawChart(h);
      perf.charts++;
    } catch (e) {
      if (e.name !== "AbortError") box.replaceChildren(el("p", { class: "muted", text: `Chart unavailable: ${e.message}` }));
    }
  }
  const SVG = "http://www.w3.org/2000/svg";
  const svg = (tag, attrs = {}) => {
    const n = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, String(v));
    return n;
  };
  let lastHistogram = null;
  function drawChart(h) {
    lastHistogram = h;
    const box = $("#chart");
    const W = Math.max(200, box.clientWidth), H = Math.max(80, box.clientHeight);
    const padL = 34, padB = 18, padT = 6;
    const n = h.starts.length;
    const totals = h.counts.map((c) => Object.values(c).reduce((a, b) => a + b, 0));
    const byAction = new Map();
    for (const c of h.counts) for (const [a, v] of Object.entries(c)) byAction.set(a, (byAction.get(a) || 0) + v);
    for (const [a, v] of byAction) noteAction(a, v);
    const order = [...byAction.keys()].sort((a, b) => byAction.get(b) - byAction.get(a));
    const max = niceMax(Math.max(1, ...totals));
    const colours = chartColours(order);
    const total = totals.reduce((a, b) => a + b, 0);
    const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", preserveAspectRatio: "none" });
    const end = h.starts[n - 1] + h.bucket_ms;
    const label = `${total.toLocaleString()} events from ${fmtUTC(h.starts[0])} to ${fmtUTC(end)} UTC`;
    root.setAttribute("aria-label", `Activity chart: ${label}. Click a bar to zoom in.`);
    $("#chart-summary").textContent = `${total.toLocaleString()} events · ${relative(h.starts[0])} → ${h.until_now ? "now" : relative(end)}`;
    const plotW = W - padL, plotH = H - padB - padT;
    const bw = plotW / n;
    for (const frac of max % 2 === 0 ? [0.5, 1] : [1]) {
      const y = padT + plotH * (1 - frac);
      root.append(svg("line", { class: "grid", x1: padL, x2: W, y1: y, y2: y }));
      const t = svg("text", { class: "axis", x: padL - 4, y: y + 4, "text-anchor": "end" });
      t.textContent = compact(Math.round(max * frac));
      root.append(t);
    }
    for (let i = 0; i < n; i++) {
      const g = svg("g", { class: "col", "data-start": h.starts[i], "data-end": h.starts[i] + h.bucket_ms });
      const x = padL + i * bw;
      g.append(svg("rect", { class: "bg", x, y: padT, width: bw, height: plotH, fill: "transparent" }));
      let y = padT + plotH;
      for (const a of order) {
        const v = h.counts[i][a];
        if (!v) continue;
        const bh = Math.max(1, (v / max) * plotH);
        y -= bh;
        const c = colours.get(a);
        g.append(svg("rect", { class: "bar", x: x + 0.5, y, width: Math.max(1, bw - 1.5), height: bh, fill: `hsl(${c.h} ${c.s}% ${c.l}%)` }));
      }
      const title = svg("title");
      const parts = order.filter((a) => h.counts[i][a]).map((a) => `${a}: ${h.counts[i][a]}`);
      title.textContent = `${fmtUTC(h.starts[i])} UTC — ${totals[i]} events${parts.length ? "\n" + parts.join("\n") : ""}`;
      g.append(title);
      g.addEventListener("click", () => zoomTo(h.starts[i], h.starts[i] + h.bucket_ms));
      root.append(g);
    }
    const ticks = Math.max(1, Math.min(4, n, Math.floor(W / 130)));
    for (let k = 0; k <= ticks; k++) {
      const ms = h.starts[0] + ((end - h.starts[0]) * k) / ticks;
      const t = svg("text", { class: "axis", x: padL + (plotW * k) / ticks, y: H - 4, "text-anchor": k === 0 ? "start" : k === ticks ? "end" : "middle" });
      t.textContent = tickLabel(ms, end - h.starts[0]);
      root.append(t);
    }
    if (total === 0) {
      const t = svg("text", { class: "empty", x: padL + plotW / 2, y: padT + plotH / 2, "text-anchor": "middle" });
      t.textContent = "No events in this range";
      root.append(t);
    }
    box.replaceChildren(root);
    $("#legend").replaceChildren(...order.slice(0, 12).map((a) => {
      const c = colours.get(a);
      const sw = el("span", { class: "sw", "aria-hidden": "true" });
      sw.style.setProperty("--h", String(c.h));
      sw.style.setProperty("--l", `${c.l}%`);
      sw.style.setProperty("--s", `${c.s}%`);
      return el("li", {}, el("button", {
        type: "button", title: `Show only ${a}`, onclick: () => { state.filters.actions = [a]; renderActionOptions(); writeURL(true); refresh(); },
      }, sw, `${a} (${byAction.get(a).toLocaleString()})`));
    }));
  }
  function niceMax(v) {
    const p = 10 ** Math.floor(Math.log10(v));
    for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }
  const compact = (v) => (v >= 1e6 ? `${(v / 1e6).toFixed(1)}M` : v >= 1e4 ? `${Math.round(v / 1e3)}k` : String(v));
  function tickLabel(ms, span) {
    const d = new Date(ms);
    if (span <= 2 * 86400e3) return d.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
    return d.toLocaleDateString(undefined, { month: "short", day: "numeric" });
  }
  function zoomTo(since, until) {
    state.zoomStack.push({ range: state.filters.range, since: state.filters.since, until: state.filters.until });
    Object.assign(state.filters, { range: "custom", since, until });
    syncForm();
    writeURL(true);
    refresh();
  }
  function zoomOut() {
    const prev = state.zoomStack.pop();
    if (!prev) return;
    Object.assign(state.filters, prev);
    syncForm();
    writeURL(true);
    refresh();
  }

  // ---------------------------------------------------------------- detail panel
  function jsonNode(value) {
    // Pretty JSON with light highlighting, built as text nodes (never innerHTML).
    const pre = el("pre", { class: "json", tabindex: "0" });
    const text = JSON.stringify(value, null, 2);
    const re = /("(?:\\.|[^"\\])*")(\s*:)?|(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)|\b(true|false|null)\b/g;
    let last = 0, m;
    while ((m = re.exec(text))) {
      if (m.index > last) pre.append(text.slice(last, m.index));
      if (m[1]) {
        pre.append(el("span", { class: m[2] ? "j-key" : "j-str", text: m[1] }));
        if (m[2]) pre.append(m[2]);
      } else if (m[3]) pre.append(el("span", { class: "j-num", text: m[3] }));
      else pre.append(el("span", { class: "j-lit", text: m[4] }));
      last = re.lastIndex;
    }
    pre.append(text.slice(last));
    return pre;
  }
  async function copyText(text, what) {
    try {
      await navigator.clipboard.writeText(text);
    } catch (_) {
      const ta = el("textarea", {});
      ta.value = text;
      document.body.append(ta);
      ta.select();
      document.execCommand("copy");
      ta.remove();
    }
    toast(`${what} copied`);
  }
  let toastTimer = 0;
  function toast(text) {
    const t = $("#toast");
    t.textContent = text;
    t.classList.add("show");
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => t.classList.remove("show"), 1600);
  }
  const fmtValue = (v) => (v === undefined ? "—" : typeof v === "string" ? v : JSON.stringify(v));
  function diffTable(before, after, changed) {
    const keys = [...new Set([...Object.keys(before || {}), ...Object.keys(after || {}), ...(changed || [])])];
    const marked = new Set(changed || []);
    const rows = keys.map((k) => {
      const b = (before || {})[k], a = (after || {})[k];
      const isChanged = marked.has(k) || JSON.stringify(b) !== JSON.stringify(a);
      return el("tr", { class: isChanged ? "changed" : null, "aria-label": isChanged ? `${k} changed` : null },
        el("td", { class: "mono", text: k }), el("td", { class: "mono", text: fmtValue(b) }), el("td", { class: "mono", text: fmtValue(a) }));
    });
    rows.sort((x, y) => Number(y.classList.contains("changed")) - Number(x.classList.contains("changed")));
    return el("table", { class: "diff", "aria-label": "Fields before and after the change" },
      el("colgroup", {}, el("col", { class: "k" }), el("col"), el("col")),
      el("thead", {}, el("tr", {}, el("th", { scope: "col", text: "Field" }), el("th", { scope: "col", text: "Before" }), el("th", { scope: "col", text: "After" }))),
      el("tbody", {}, ...rows));
  }
  let lastFocus = null;
  async function openDetail(uid) {
    const panel = $("#detail");
    lastFocus = document.activeElement;
    state.openUid = uid;
    writeURL();
    panel.hidden = false;
    $("#detail-title").textContent = "Loading…";
    $("#detail-body").replaceChildren();
    panel.focus();
    let body;
    try {
      const res = await api(endpoint("event").replace("{uid}", encodeURIComponent(uid)));
      body = await res.json();
    } catch (e) {
      $("#detail-title").textContent = "Event";
      $("#detail-body").replaceChildren(el("p", { class: "error", text: e.status === 404 ? "No such event in this workspace." : `Cannot load the event: ${e.message}` }));
      return;
    }
    if (state.openUid !== uid) return;
    const ev = body.event || body;
    $("#detail-title").textContent = `${ev.action} · ${ev.id}`;
    const actor = ev.actor || {};
    const dl = el("dl", { class: "fields" });
    const add = (k, ...v) => dl.append(el("dt", { text: k }), el("dd", {}, ...v));
    add("Time", el("time", { datetime: new Date(ev.timestamp).toISOString(), text: `${fmtUTC(ev.timestamp)} UTC` }),
      el("br"), el("span", { class: "muted", text: `${fmtLocal(ev.timestamp)} local · ${relative(ev.timestamp)} · ${ev.timestamp} ms` }));
    add("Action", badge(ev.action), el("span", { class: "muted", text: `  v${ev.version}` }));
    add("Event id", el("span", { class: "mono", text: ev.id }));
    add("Actor", `${actor.name || ""}`, actor.id ? el("span", { class: "muted mono", text: `  id ${actor.id}` }) : null,
      actor.type ? el("span", { class: "actor-type", text: actor.type }) : null);
    add("Targets", ...(ev.targets && ev.targets.length ? targetsText(ev.targets).map((t) => el("span", { class: "tgt mono", text: t })) : ["—"]));
    add("Workspace", el("span", { class: "mono", text: ev.workspace || "(default)" }));
    add("UID", el("span", { class: "mono", text: ev.uid }));
    if (state.session.kind === "api_key") add("Integrity", proofBadge(ev));
    const bodyBox = $("#detail-body");
    bodyBox.replaceChildren();
    if (ev.schema_error) bodyBox.append(el("p", { class: "schema-error", role: "note", text: `Stored metadata does not fit its schema: ${ev.schema_error}` }));
    bodyBox.append(dl);
    const md = ev.metadata;
    if (md && typeof md === "object" && md.before && md.after && typeof md.before === "object" && typeof md.after === "object") {
      const changed = Array.isArray(md.changed) ? md.changed : null;
      bodyBox.append(el("h3", { text: `Changes${changed ? ` (${changed.length} field${changed.length === 1 ? "" : "s"})` : ""}` }),
        diffTable(md.before, md.after, changed));
    }
    const mdText = JSON.stringify(md === undefined ? null : md, null, 2);
    bodyBox.append(
      el("h3", {}, "Metadata", el("button", { type: "button", class: "btn", id: "copy-metadata", onclick: () => copyText(mdText, "Metadata") }, "Copy")),
      jsonNode(md === undefined ? null : md),
    );
    if (body.row) {
      const rowText = JSON.stringify(body.row, null, 2);
      bodyBox.append(
        el("h3", {}, "Stored row", el("button", { type: "button", class: "btn", onclick: () => copyText(rowText, "Row") }, "Copy")),
        jsonNode(body.row),
      );
    }
  }
  // ---------------------------------------------------------------- detail panel: provable history
  // The badge says whether this event verifies against the latest checkpoint, checked HERE: the
  // browser hashes the event's stored bytes (RFC 8785, from the proof) with WebCrypto and walks the
  // RFC 9162 inclusion path to the checkpoint's root. So neither the server's proof code nor its
  // recorded leaf is trusted, and a row altered in the file does not verify. What it cannot prove
  // is that the checkpoint itself is genuine (it comes from the same server): compare it with one
  // saved elsewhere, or run `auditbird verify --checkpoint FILE` against a pinned key.
  const b64bytes = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
  const sameBytes = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
  async function sha256(...parts) {
    const buf = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    parts.reduce((at, p) => (buf.set(p, at), at + p.length), 0);
    return new Uint8Array(await crypto.subtle.digest("SHA-256", buf));
  }
  async function rootFromPath(leaf, index, size, path) {
    // RFC 9162 2.1.3.2 (sizes up to 2**53: halve with Math.floor, not 32-bit shifts).
    if (!(index >= 0 && index < size)) return null;
    const half = (n) => Math.floor(n / 2);
    let fn = index, sn = size - 1, r = leaf;
    for (const p of path) {
      if (sn === 0) return null;
      if (fn % 2 === 1 || fn === sn) {
        r = await sha256(Uint8Array.of(1), p, r);
        while (fn % 2 === 0 && fn !== 0) { fn = half(fn); sn = half(sn); }
      } else r = await sha256(Uint8Array.of(1), r, p);
      fn = half(fn); sn = half(sn);
    }
    return sn === 0 ? r : null;
  }
  async function proofVerdict(ev) {
    const events = endpoint("events");
    const cp = await (await api(events.replace(/\/events$/, "/checkpoint"), { accept: "text/plain" })).text();
    const [, sizeText, rootB64] = cp.split("\n");
    const size = Number(sizeText);
    if (!(size > 0)) return { ok: false, text: "no checkpoint yet", why: "The tree is empty." };
    let proof;
    try {
      proof = await (await api(`${events}/${encodeURIComponent(ev.uid)}/proof`, { params: new URLSearchParams({ size: String(size) }) })).json();
    } catch (e) {
      if (e.status === 422) return { ok: null, text: "newer than the latest checkpoint", why: e.message };
      throw e;
    }
    const stored = JSON.parse(proof.leaf_data);
    if (stored.uid !== ev.uid || stored.id !== ev.id || stored.action !== ev.action || stored.timestamp !== ev.timestamp)
      return { ok: false, text: "does not verify", why: "The proof is for other data than this event shows." };
    const leaf = await sha256(Uint8Array.of(0), new TextEncoder().encode(proof.leaf_data));
    const root = await rootFromPath(leaf, proof.leaf_index, size, proof.inclusion_path.map(b64bytes));
    if (root && proof.tree_size === size && sameBytes(root, b64bytes(rootB64)))
      return { ok: true, text: "verified", why: `Event #${proof.leaf_index + 1} of the ${size} in the latest checkpoint; its stored bytes hash, in this browser, to the checkpoint's root.` };
    return { ok: false, text: "does not verify", why: `This event as stored does not hash to the root of the latest checkpoint (${size} events): it was changed after it was recorded.` };
  }
  function proofBadge(ev) {
    const b = el("span", { class: "badge proof", id: "proof-badge", "data-state": "checking", text: "checking…" });
    const show = (state_, text, why, hue) => {
      b.dataset.state = state_;
      b.textContent = text;
      b.title = why;
      if (hue !== null) b.style.setProperty("--h", String(hue));
    };
    if (!(window.crypto && crypto.subtle)) {
      show("unavailable", "cannot check here", "This page is not in a secure context (https or localhost): no WebCrypto.", null);
      return b;
    }
    proofVerdict(ev).then(
      (v) => show(v.ok === true ? "verified" : v.ok === false ? "failed" : "pending", v.text, v.why, v.ok === true ? 140 : v.ok === false ? 0 : null),
      (e) => show("unavailable", e.status === 501 ? "no Merkle tree" : e.status === 404 ? "not in the tree yet" : "cannot check", e.message, null),
    );
    return b;
  }
  function closeDetail() {
    const panel = $("#detail");
    if (panel.hidden) return;
    panel.hidden = true;
    state.openUid = null;
    writeURL();
    if (lastFocus && document.contains(lastFocus)) lastFocus.focus();
  }

  // ---------------------------------------------------------------- live tail (SSE over fetch: keeps the key in a header)
  function startLive() {
    stopLive();
    const ctrl = new AbortController();
    state.live = { ctrl, after: state.rows.length ? state.rows[0].timestamp : Date.now(), retry: 500 };
    $("#live-toggle").setAttribute("aria-pressed", "true");
    $("#live-news").textContent = "Live: waiting for new events…";
    runLive(state.live);
  }
  function restartLive() { if (state.live) startLive(); }
  function stopLive() {
    if (!state.live) return;
    state.live.ctrl.abort();
    state.live = null;
    $("#live-toggle").setAttribute("aria-pressed", "false");
    $("#live-news").textContent = "";
  }
  async function runLive(live) {
    while (state.live === live) {
      try {
        const params = apiParams();
        params.delete("until");
        params.set("since", String(live.after));
        const res = await api(endpoint("stream"), { params, signal: live.ctrl.signal, accept: "text/event-stream" });
        live.retry = 500;
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value;
          let cut;
          while ((cut = buf.indexOf("\n\n")) >= 0) {
            handleSSE(buf.slice(0, cut), live);
            buf = buf.slice(cut + 2);
          }
        }
      } catch (e) {
        if (e.name === "AbortError" || state.live !== live) return;
        if (e instanceof HttpError && (e.status === 401 || e.status === 403)) { stopLive(); return; }
      }
      await new Promise((r) => setTimeout(r, live.retry));
      live.retry = Math.min(live.retry * 2, 10000);
    }
  }
  function handleSSE(chunk, live) {
    let type = "message", data = "";
    for (const line of chunk.split("\n")) {
      if (line.startsWith("event:")) type = line.slice(6).trim();
      else if (line.startsWith("data:")) data += line.slice(5).trim();
    }
    if (type !== "events" || !data) return;
    const events = JSON.parse(data);
    for (const ev of events) live.after = Math.max(live.after, ev.timestamp);
    prependRows(events);
  }

  // ---------------------------------------------------------------- export
  async function exportAs(format) {
    const params = apiParams();
    params.set("format", format);
    toast(`Exporting ${format.toUpperCase()}…`);
    try {
      const res = await api(endpoint("export"), { params, accept: format === "csv" ? "text/csv" : "application/x-ndjson" });
      const blob = await res.blob();
      const url = URL.createObjectURL(blob);
      const stamp = new Date().toISOString().slice(0, 19).replace(/[:T]/g, "-");
      const a = el("a", { href: url, download: `auditbird-${state.session.workspace || "default"}-${stamp}.${format}` });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 30000);
      toast(`Exported ${format.toUpperCase()}`);
    } catch (e) {
      toast(`Export failed: ${e.message}`);
    }
  }

  // ---------------------------------------------------------------- theme
  function applyTheme(theme) {
    document.documentElement.dataset.theme = theme;
    const b = $("#theme-toggle");
    if (b) b.setAttribute("aria-label", theme === "dark" ? "Switch to light theme" : "Switch to dark theme");
  }

  // ---------------------------------------------------------------- wiring
  function wireUI() {
    $("#signin-form").addEventListener("submit", async (e) => {
      e.preventDefault();
      const key = $("#api-key").value.trim();
      if (!key) return;
      state.credential = key;
      $("#api-key").value = "";
      await startSession();
    });
    $("#signout").addEventListener("click", () => signOut(""));
    $("#theme-toggle").addEventListener("click", () => {
      const next = document.documentElement.dataset.theme === "dark" ? "light" : "dark";
      localStorage.setItem(THEME_KEY, next);
      applyTheme(next);
    });
    const form = $("#filters");
    form.addEventListener("submit", (e) => { e.preventDefault(); filtersChanged({ immediate: true, push: true }); });
    form.addEventListener("input", (e) => {
      if (e.target.closest("#action-pop")) return;
      if (e.target.name === "range") {
        state.zoomStack = [];
        if (e.target.value === "custom" && state.filters.since === null) {
          const w = timeWindow();
          $("#f-since").value = toLocalInput(w.since !== null ? w.since : Date.now() - 86400e3);
          $("#f-until").value = toLocalInput(Date.now());
        }
        $("#zoom-out").hidden = true;
        return filtersChanged({ immediate: true, push: true });
      }
      filtersChanged();
    });
    $("#zoom-out").addEventListener("click", zoomOut);
    // actions menu
    const aBtn = $("#action-button"), aPop = $("#action-pop");
    aBtn.addEventListener("click", () => {
      const open = aPop.hidden;
      setMenu(aBtn, aPop, open);
      if (open) { renderActionOptions(); $("#action-search").focus(); }
    });
    $("#action-search").addEventListener("input", renderActionOptions);
    $("#action-options").addEventListener("change", () => {
      state.filters.actions = [...document.querySelectorAll("#action-options input:checked")].map((i) => i.value);
      // keep selections hidden by the search box
      const shown = new Set([...document.querySelectorAll("#action-options input")].map((i) => i.value));
      for (const a of state.lastActions || []) if (!shown.has(a)) state.filters.actions.push(a);
      state.lastActions = state.filters.actions.slice();
      updateActionButton();
      writeURL(true);
      refresh();
    });
    aBtn.addEventListener("focus", () => { state.lastActions = state.filters.actions.slice(); });
    $("#action-clear").addEventListener("click", () => {
      state.filters.actions = [];
      state.lastActions = [];
      renderActionOptions();
      writeURL(true);
      refresh();
    });
    // export menu
    const eBtn = $("#export-button"), eList = $("#export-list");
    eBtn.addEventListener("click", () => {
      setMenu(eBtn, eList, eList.hidden);
      if (!eList.hidden) eList.querySelector("button").focus();
    });
    eList.addEventListener("click", (e) => {
      const b = e.target.closest("button[data-format]");
      if (!b) return;
      setMenu(eBtn, eList, false);
      exportAs(b.dataset.format);
    });
    document.addEventListener("click", (e) => {
      if (!e.target.closest("#action-menu")) setMenu(aBtn, aPop, false);
      if (!e.target.closest("#export-menu")) setMenu(eBtn, eList, false);
    });
    $("#filters-toggle").addEventListener("click", () => {
      const open = !form.classList.contains("open");
      form.classList.toggle("open", open);
      $("#filters-toggle").setAttribute("aria-expanded", String(open));
    });
    $("#live-toggle").addEventListener("click", () => (state.live ? stopLive() : startLive()));
    $("#help-button").addEventListener("click", () => $("#help").showModal());
    $("#detail-close").addEventListener("click", closeDetail);
    $("#detail-link").addEventListener("click", () => copyText(location.origin + filtersToURL(state.filters, { event: state.openUid }), "Link"));
    // rows
    $("#rows").addEventListener("click", (e) => {
      const row = e.target.closest(".row");
      if (!row) return;
      focusRow(Number(row.dataset.index));
      openDetail(row.dataset.uid);
    });
    let resizeTimer = 0;
    new ResizeObserver(() => {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(() => { if (lastHistogram && !$("#viewer").hidden) drawChart(lastHistogram); }, 120);
    }).observe($("#chart"));
    window.addEventListener("scroll", scheduleRender, { passive: true });
    window.addEventListener("resize", layoutRows);
    new IntersectionObserver((entries) => { if (entries.some((x) => x.isIntersecting)) loadMore(); }, { rootMargin: "800px" })
      .observe($("#sentinel"));
    window.addEventListener("popstate", () => {
      state.filters = readURL();
      syncForm();
      renderActionOptions();
      refresh();
    });
    document.addEventListener("keydown", onKey);
  }
  function onKey(e) {
    if (!state.session) return;
    const typing = e.target.closest("input, textarea, select, [contenteditable]");
    if (e.key === "Escape") {
      const aPop = $("#action-pop"), eList = $("#export-list");
      if (!aPop.hidden) { setMenu($("#action-button"), aPop, false); $("#action-button").focus(); return; }
      if (!eList.hidden) { setMenu($("#export-button"), eList, false); $("#export-button").focus(); return; }
      if (!$("#detail").hidden) { closeDetail(); return; }
      if (typing) e.target.blur();
      return;
    }
    if (typing || e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.key === "/") { e.preventDefault(); $("#f-text").focus(); }
    else if (e.key === "j" || e.key === "ArrowDown" && e.target.closest("#rows")) { e.preventDefault(); focusRow(state.current + 1); }
    else if (e.key === "k" || e.key === "ArrowUp" && e.target.closest("#rows")) { e.preventDefault(); focusRow(state.current - 1); }
    else if (e.key === "Enter" && e.target.closest("#rows .row")) { e.preventDefault(); openDetail(e.target.closest(".row").dataset.uid); }
    else if (e.key === "l" || e.key === "L") { state.live ? stopLive() : startLive(); }
    else if (e.key === "?") { $("#help").showModal(); }
  }

  document.readyState === "loading" ? document.addEventListener("DOMContentLoaded", boot) : boot();
})();

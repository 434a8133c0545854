/* auditbird viewer: the workspace's log streams, for admin keys (GET /v1/streams).
 *
 * Independent of app.js: it reads the same credential from sessionStorage once the viewer is
 * shown, asks /v1/streams, and shows its section only when the answer is 200 (an admin key).
 * A read key gets 403 and sees nothing; a viewer link is never sent here. Every value from
 * the server is put in the page as text (textContent), never as HTML.
 */
"use strict";
(() => {
  const CRED_KEY = "auditbird.credential";
  const REFRESH_MS = 10_000;
  const probe = (window.__auditbirdStreams = { loads: 0, status: null, replays: 0 });
  let timer = 0;
  let openLetters = null; // the stream whose dead letters are listed

  const { el } = window.auditbirdDom; // dom.js
  const credential = () => sessionStorage.getItem(CRED_KEY);
  const isKey = (c) => c && !c.startsWith("abl1.");

  async function call(path, method = "GET") {
    const res = await fetch(path, {
      method,
      headers: { Authorization: `Bearer ${credential()}`, Accept: "application/json" },
      cache: "no-store",
    });
    let body = null;
    try { body = await res.json(); } catch (_) { /* an empty answer */ }
    return { status: res.status, body };
  }

  function duration(seconds) {
    if (!seconds) return "0 s";
    if (seconds < 90) return `${Math.round(seconds)} s`;
    if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
    if (seconds < 172800) return `${Math.round(seconds / 3600)} h`;
    return `${Math.round(seconds / 86400)} d`;
  }
  function state(s) {
    if (s.paused) return ["paused", "paused"];
    if (s.last_error) return ["failing", "failing"];
    return s.events_behind ? ["delivering", "ok"] : ["up to date", "ok"];
  }

  function section() {
    let box = document.getElementById("streams-panel");
    if (!box) {
      box = el("details", { id: "streams-panel", class: "streams-panel" },
        el("summary", {}, el("span", { class: "streams-title", text: "Log streams" }),
          el("span", { id: "streams-summary", class: "muted" })),
        el("div", { id: "streams-body" }));
      const anchor = document.querySelector("#viewer .chart-wrap");
      anchor.parentNode.insertBefore(box, anchor);
    }
    return box;
  }
  function removeSection() {
    clearTimeout(timer);
    document.getElementById("streams-panel")?.remove();
  }

  async function load() {
    clearTimeout(timer);
    const viewer = document.getElementById("viewer");
    if (!viewer || viewer.hidden || !isKey(credential())) {
      probe.status = null;
      return removeSection();
    }
    let answer;
    try { answer = await call("v1/streams"); } catch (_) { answer = { status: 0 }; }
    probe.loads += 1;
    probe.status = answer.status;
    if (answer.status !== 200) return removeSection(); // not an admin key: nothing to show
    render(answer.body.data);
    if (openLetters) await showLetters(openLetters);
    timer = setTimeout(load, REFRESH_MS);
  }

  function render(streams) {
    const box = section();
    const behind = streams.reduce((n, s) => n + s.events_behind, 0);
    const dead = streams.reduce((n, s) => n + s.dead_letters, 0);
    document.getElementById("streams-summary").textContent =
      ` ${streams.length} · ${behind} event(s) behind · ${dead} dead letter(s)`;
    const body = document.getElementById("streams-body");
    if (!streams.length) {
      body.replaceChildren(el("p", { class: "muted", text: "No stream yet: add one with `auditbird streams add` or POST /v1/streams." }));
      return;
    }
    const numeric = new Set(["Behind", "Oldest waiting", "Delivered", "Dead letters"]);
    const head = el("tr", {}, ...["Stream", "Kind", "Status", "Behind", "Oldest waiting", "Delivered", "Last error", "Dead letters"]
      .map((t) => el("th", { scope: "col", class: numeric.has(t) ? "num" : null, text: t })));
    const rows = streams.map((s) => {
      const [label, kind] = state(s);
      const letters = el("td", { class: "num" }, el("span", { "data-dead": "", text: String(s.dead_letters) }));
      if (s.dead_letters) {
        letters.append(
          el("button", { type: "button", class: "link", "data-show": s.name, text: "Show", onclick: () => showLetters(s.name) }),
          el("button", { type: "button", class: "btn small", "data-replay": s.name, text: "Replay", onclick: () => replay(s.name) }),
        );
      }
      return el("tr", { "data-stream": s.name },
        el("th", { scope: "row", text: s.name }),
        el("td", { text: s.kind }),
        el("td", {}, el("span", { class: `stream-state ${kind}`, text: label })),
        el("td", { class: "num", "data-behind": String(s.events_behind), text: `${s.events_behind}${s.behind_capped ? "+" : ""}` }),
        el("td", { class: "num", text: s.events_behind ? duration(s.seconds_behind) : "–" }),
        el("td", { class: "num", text: String(s.delivered) }),
        el("td", { class: "stream-error", title: s.last_error || "", text: s.last_error || "–" }),
        letters);
    });
    body.replaceChildren(
      el("table", { class: "streams-table" }, el("thead", {}, head), el("tbody", {}, ...rows)),
      el("div", { id: "streams-letters" }),
      el("p", { id: "streams-note", class: "muted", role: "status" }),
    );
  }

  async function showLetters(name) {
    openLetters = name;
    const { status, body } = await call(`v1/streams/${encodeURIComponent(name)}/dead-letters?limit=100`);
    const box = document.getElementById("streams-letters");
    if (!box) return;
    if (status !== 200) { openLetters = null; box.replaceChildren(); return; }
    const items = body.data.map((d) => el("li", { "data-uid": d.uid },
      el("code", { text: d.uid }), ` ${d.event.action} · ${d.attempts} attempt(s) · `, el("span", { class: "stream-error", text: d.error })));
    box.replaceChildren(el("h3", { text: `Dead letters of ${name}` }),
      items.length ? el("ol", { class: "streams-letters" }, ...items) : el("p", { class: "muted", text: "None." }));
  }

  async function replay(name) {
    const note = () => document.getElementById("streams-note");
    note().textContent = `Replaying the dead letters of ${name}…`;
    const { status, body } = await call(`v1/streams/${encodeURIComponent(name)}/dead-letters/replay`, "POST");
    await load();
    const n = note();
    if (n) {
      if (status === 200) n.textContent = `Replayed ${body.replayed} dead letter(s) of ${name}.`;
      else if (body && "replayed" in body) n.textContent = `Replayed ${body.replayed}; the receiver refused again: ${body.error}`;
      else n.textContent = `Replay failed: ${(body && (body.detail || body.title)) || status}`;
    }
    probe.replays += 1; // last: a test waiting for it sees the table and the note as they end up
  }

  function watch() {
    const viewer = document.getElementById("viewer");
    if (!viewer) return;
    // app.js shows #viewer after a sign-in and hides it on sign-out: follow it.
    new MutationObserver(() => load()).observe(viewer, { attributes: true, attributeFilter: ["hidden"] });
    load();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", watch);
  else watch();
})();

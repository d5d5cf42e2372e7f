// The wallboard: one EventSource; `snapshot` replaces the state, `patch` touches only the rows
// that changed, `figures` redraws the campaigns and alerts. Durations tick locally from the
// server's clock (the skew is measured on every message). A wall display can stay open all
// day: EventSource reconnects by itself, and a watchdog reopens a stream that went quiet or
// was closed for good (e.g. the service restarted).
const $ = (id) => document.getElementById(id);
const T = JSON.parse($("messages").textContent);
const csrf = document.querySelector('meta[name="csrf-token"]').content;
const state = { seat: {}, call: {}, link: {}, process: {}, figures: {} };
let skew = 0; // server clock - local clock, ms
let deskTz = "Asia/Shanghai"; // the desk's time zone (the snapshot says)
let source = null;
let lastMessage = Date.now();
const QUIET_MS = 45000; // the server pings every 15 s

const h = (tag, attrs = {}, ...kids) => {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") el.textContent = v;
    else if (v !== null && v !== undefined) el.setAttribute(k, v);
  }
  for (const kid of kids) el.append(kid);
  return el;
};
const fmt = (template, params) =>
  template.replace(/\{(\w+)\}/g, (_, k) => (params[k] ?? "").toString());
const pct = (x) => (x === null || x === undefined ? "—" : `${(x * 100).toFixed(1)}%`);
const name = (id) => (id === null || id === undefined ? T.automatic : state.figures.names?.[id] ?? `#${id}`);
const now = () => Date.now() + skew;
const since = (iso) => {
  if (!iso) return "";
  const s = Math.max(0, Math.floor((now() - Date.parse(iso)) / 1000));
  const m = Math.floor(s / 60);
  return m >= 60 ? `${Math.floor(m / 60)}:${String(m % 60).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`
    : `${m}:${String(s % 60).padStart(2, "0")}`;
};
const clockSync = (serverNow) => { if (serverNow) skew = Date.parse(serverNow) - Date.now(); };

// -- seats ---------------------------------------------------------------------------------
function seatTile(key, s) {
  const tile = h("div", { class: "tile", "data-key": key, "data-state": s.state });
  tile.append(
    h("strong", { class: "name", text: name(s.specialist_id) }),
    h("span", { class: "device", text: s.seat }),
    h("span", { class: "st", text: T.states[s.state] ?? s.state }),
    h("span", { class: "since", "data-since": s.since ?? "", text: since(s.since) }),
  );
  if (s.state === "paused" && s.pause_reason) tile.append(h("span", { class: "reason", text: s.pause_reason }));
  return tile;
}
function putSeat(key, s) {
  const box = $("seats");
  const old = box.querySelector(`[data-key="${CSS.escape(key)}"]`);
  const tile = seatTile(key, s);
  if (old) old.replaceWith(tile);
  else {
    const next = [...box.children].find((t) => (state.seat[t.dataset.key]?.seat ?? "") > s.seat);
    box.insertBefore(tile, next ?? null);
  }
}

// -- calls ---------------------------------------------------------------------------------
function callRow(key, c) {
  const row = h("tr", { "data-key": key, "data-state": c.state, "data-answered": c.answered ? "1" : "0" });
  const acts = h("td", { class: "acts" });
  for (const a of ["listen", "whisper", "barge", "hangup", "move"]) {
    acts.append(h("button", { type: "button", "data-action": a, "data-attempt": key, text: T.actions[a] }));
  }
  row.append(
    h("td", { text: c.specialist_id ? `${name(c.specialist_id)} ${c.seat ?? ""}` : T.automatic }),
    h("td", { text: c.number }),
    h("td", { text: T.kinds[c.kind] ?? c.kind }),
    h("td", { class: "cstate", text: c.answered ? T.call_states.bridged : (T.call_states[c.state] ?? c.state) }),
    h("td", { "data-since": c.started, text: since(c.started) }),
    h("td", { "data-since": c.answered ?? "", text: since(c.answered) }),
    acts,
  );
  return row;
}
function putCall(key, c) {
  const body = $("calls");
  const old = body.querySelector(`tr[data-key="${CSS.escape(key)}"]`);
  if (!old) { body.append(callRow(key, c)); return; }
  // In place: only the cells that change (a busy board must not rebuild 300 rows' buttons).
  const fresh = callRow(key, c);
  for (const attr of ["data-state", "data-answered"]) old.setAttribute(attr, fresh.getAttribute(attr));
  for (let i = 0; i < 6; i++) {
    const a = old.cells[i], b = fresh.cells[i];
    if (a.textContent !== b.textContent) a.textContent = b.textContent;
    if (a.dataset.since !== b.dataset.since && b.dataset.since !== undefined) a.dataset.since = b.dataset.since;
  }
}

// -- links, campaigns, alerts -----------------------------------------------------------------
function drawLinks() {
  const body = $("links");
  body.replaceChildren(...Object.values(state.link).sort((a, b) => a.server.localeCompare(b.server)).map((l) => {
    const trunks = Object.entries(l.trunks ?? {}).map(([n, t]) => `${n} ${t.active}/${t.max}`).join(", ");
    return h("tr", { "data-key": l.server, "data-connected": l.connected ? "1" : "0" },
      h("td", { text: l.server }),
      h("td", { class: l.connected ? "ok" : "bad", text: l.connected ? T.yes : T.no,
        title: (l.warnings ?? []).join("\n") || null }),
      h("td", { text: trunks || "—" }));
  }));
}
function drawCampaigns() {
  const body = $("campaigns");
  body.replaceChildren(...(state.figures.campaigns ?? []).map((c) => {
    const w = c.window;
    return h("tr", { "data-kind": c.kind, class: c.running ? "running" : "stopped" },
      h("td", { text: `${T.kinds[c.kind] ?? c.kind} (${c.name})` }),
      h("td", { text: w.dialled }), h("td", { text: w.answered }), h("td", { text: w.renewed }),
      h("td", { text: w.abandoned }), h("td", { text: w.left ?? "—" }),
      h("td", { text: pct(c.today.answer_rate) }), h("td", { text: pct(c.today.abandon_rate) }),
      h("td", { text: pct(c.rolling.answer_rate) }), h("td", { text: pct(c.rolling.abandon_rate) }));
  }));
}
// Pooled campaigns: the abandon rate as the pacer holds it (today and the rolling 30 days).
function drawPooled() {
  const list = state.figures.pooled ?? [];
  $("pooled").replaceChildren(...(list.length ? list.map((c) => {
    const over = (r) => (r > c.abandon_cap ? "bad" : r > c.target_abandon ? "warn" : "ok");
    return h("tr", { "data-name": c.name, class: c.running ? "running" : "stopped" },
      h("td", { text: `${T.kinds[c.kind] ?? c.kind} (${c.name})` }),
      h("td", { text: T.pacing[c.pacing] ?? c.pacing }),
      h("td", { text: `${c.abandoned_today} / ${c.answered_today}` }),
      h("td", { class: over(c.abandon_rate_today), "data-rate": "today", text: pct(c.abandon_rate_today) }),
      h("td", { text: `${c.abandoned_30d} / ${c.answered_30d}` }),
      h("td", { class: over(c.abandon_rate_30d), "data-rate": "30d", text: pct(c.abandon_rate_30d) }),
      h("td", { text: pct(c.target_abandon) }), h("td", { text: pct(c.abandon_cap) }),
      h("td", { text: c.pacing_ratio_cap }));
  }) : [h("tr", {}, h("td", { colspan: "9", class: "empty", text: T.none }))]));
}
function alertText(a) {
  const p = { ...a.params };
  if (a.code === "seat_paused") p.name = name(p.specialist_id);
  if (a.code === "abandon_rate") { p.kind = T.kinds[p.kind] ?? p.kind; p.rate = pct(p.rate); p.cap = pct(p.cap); }
  return fmt(T.alerts[a.code] ?? a.code, p);
}
function drawAlerts() {
  const list = state.figures.alerts ?? [];
  $("alerts").replaceChildren(...(list.length ? list.map((a) =>
    h("li", { class: a.level, "data-code": a.code, text: alertText(a) })) : [h("li", { class: "empty", text: T.none })]));
}
function drawMoveTargets() {
  const sel = $("move-to");
  const keep = sel.value;
  const seats = Object.values(state.seat).filter((s) => s.state === "ready")
    .sort((a, b) => a.seat.localeCompare(b.seat));
  sel.replaceChildren(h("option", { value: "", text: "—" }),
    ...seats.map((s) => h("option", { value: s.seat, text: `${name(s.specialist_id)} ${s.seat}` })));
  sel.value = seats.some((s) => s.seat === keep) ? keep : "";
}
function counts() {
  $("call-count").textContent = Object.keys(state.call).length;
  const seats = Object.values(state.seat);
  $("seat-count").textContent = `${seats.filter((s) => s.state !== "offline").length}/${seats.length}`;
}

// -- the stream -------------------------------------------------------------------------------
function drawAll() {
  $("seats").replaceChildren();
  for (const [k, s] of Object.entries(state.seat)) putSeat(k, s);
  $("calls").replaceChildren();
  for (const [k, c] of Object.entries(state.call)) putCall(k, c);
  drawLinks(); drawCampaigns(); drawPooled(); drawAlerts(); counts();
}
function onSnapshot(ev) {
  const d = JSON.parse(ev.data);
  clockSync(d.server_now);
  deskTz = d.tz ?? deskTz;
  for (const k of ["seat", "call", "link", "process"]) state[k] = d[k] ?? {};
  state.figures = d.figures ?? {};
  drawAll();
}
function onPatch(ev) {
  const d = JSON.parse(ev.data);
  clockSync(d.server_now);
  for (const [kind, keys] of Object.entries(d.del ?? {})) {
    for (const key of keys) {
      delete state[kind]?.[key];
      if (kind === "seat") $("seats").querySelector(`[data-key="${CSS.escape(key)}"]`)?.remove();
      if (kind === "call") $("calls").querySelector(`tr[data-key="${CSS.escape(key)}"]`)?.remove();
    }
  }
  for (const [kind, rows] of Object.entries(d.set ?? {})) {
    for (const [key, data] of Object.entries(rows)) {
      (state[kind] ??= {})[key] = data;
      if (kind === "seat") putSeat(key, data);
      if (kind === "call") putCall(key, data);
    }
  }
  if (d.set?.link || d.del?.link) drawLinks();
  counts();
}
function onFigures(ev) {
  const names = JSON.stringify(state.figures.names ?? {});
  state.figures = JSON.parse(ev.data);
  drawCampaigns(); drawPooled(); drawAlerts();
  if (JSON.stringify(state.figures.names ?? {}) !== names) drawAll();
}
function live(ok) {
  const c = $("conn");
  c.textContent = ok ? T.connected : T.reconnecting;
  c.classList.toggle("bad", !ok);
  document.body.dataset.live = ok ? "1" : "0";
}
function connect() {
  if (source) source.close();
  source = new EventSource("/api/board/events");
  const seen = (fn) => (ev) => { lastMessage = Date.now(); live(true); fn(ev); };
  source.addEventListener("snapshot", seen(onSnapshot));
  source.addEventListener("patch", seen(onPatch));
  source.addEventListener("figures", seen(onFigures));
  source.addEventListener("ping", seen(() => {}));
  source.onerror = () => live(false);
}
setInterval(() => {
  for (const el of document.querySelectorAll("[data-since]")) {
    const text = since(el.dataset.since);
    if (el.textContent !== text) el.textContent = text;
  }
  $("clock").textContent = new Date(now()).toLocaleTimeString(document.documentElement.lang, { timeZone: deskTz });
  // Closed for good (an HTTP error answer), or silent past the pings: open a new stream.
  if (source && (source.readyState === 2 || Date.now() - lastMessage > QUIET_MS)) {
    lastMessage = Date.now();
    connect();
  }
}, 1000);

// -- acting on a call ---------------------------------------------------------------------------
async function act(attempt, action) {
  const toast = $("toast");
  let to = null;
  if (action === "move") {
    to = $("move-to").value;
    if (!to) { toast.textContent = T.pick_seat; toast.classList.add("bad"); return; }
  }
  if (action === "hangup" && !window.confirm(T.confirm_hangup)) return;
  const resp = await fetch(`/api/board/calls/${encodeURIComponent(attempt)}/${action}`, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
    body: JSON.stringify(to ? { to } : {}),
  });
  const body = await resp.json().catch(() => ({}));
  toast.classList.toggle("bad", !resp.ok);
  toast.textContent = resp.ok ? (["listen", "whisper", "barge"].includes(action) ? T.done : T.done_other)
    : (body.error ?? resp.statusText);
  toast.dataset.status = String(resp.status);
}
// The seats to move a call to: drawn when the list is opened, not on every seat change.
for (const ev of ["focus", "mousedown"]) $("move-to").addEventListener(ev, drawMoveTargets);
$("calls").addEventListener("click", (ev) => {
  const b = ev.target.closest("button[data-action]");
  if (b) act(b.dataset.attempt, b.dataset.action);
});
connect();

// The seat page: one module, no framework. Live seat changes and screen pops arrive as
// server-sent events (/api/seat/events); actions use the JSON API with the session's CSRF
// token. Every action has an Alt+key shortcut (shown on its button).

const M = JSON.parse(document.getElementById("messages").textContent);
const CSRF = document.querySelector('meta[name="csrf-token"]').content;
const $ = (id) => document.getElementById(id);
const DESK = document.querySelector('meta[name="desk-tz"]');
const DESK_TZ = DESK.content;
const DESK_OFFSET = DESK.dataset.offset;

function fmt(text, params = {}) {
  return text.replace(/\{(\w+)\}/g, (_, k) => (k in params ? String(params[k]) : `{${k}}`));
}

async function api(method, path, body) {
  const opts = { method, headers: { "X-CSRF-Token": CSRF }, credentials: "same-origin" };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const resp = await fetch(path, opts);
  let data = null;
  try { data = await resp.json(); } catch { data = null; }
  if (!resp.ok) {
    const err = new Error((data && data.error) || resp.statusText);
    err.status = resp.status;
    err.data = data || {};
    throw err;
  }
  return data;
}

let toastTimer = 0;
function toast(text, bad = false) {
  const t = $("toast");
  t.textContent = text;
  t.classList.toggle("bad", bad);
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.textContent = ""; }, 6000);
}

function explain(err) {
  const d = err.data || {};
  if (d.code && M[d.code]) return fmt(M[d.code], d.params || {});
  return fmt(M.error, { reason: err.message });
}

async function act(method, path, body) {
  const heard = seatEvents;
  try {
    const seat = await api(method, path, body);
    // The live stream carries every seat change in order: an answer it overtook is older
    // than the screen (a preview offered while the answer was on its way), so it is dropped.
    if (seat && seat.state && heard === seatEvents) showSeat(seat);
    return seat;
  } catch (err) {
    toast(explain(err), true);
    return null;
  }
}

// -- the seat ------------------------------------------------------------------------------
function pauseText(reason) {
  // The reasons offered are codes with translated labels; "signed in" and others as sent.
  const option = [...$("pause-reason").options].find((o) => o.value === reason);
  return option ? option.textContent : reason;
}

let seat = { state: "offline" };
let seatEvents = 0; // seat views heard on the live stream
let wrapEnd = 0; // performance.now() at which the wrap-up ends
let wrapTimer = 0;

function showSeat(view) {
  seat = view;
  const el = $("seat-state");
  el.dataset.state = view.state;
  el.textContent = M[view.state] + (view.pause_reason && view.state === "paused" ? ` · ${pauseText(view.pause_reason)}` : "");
  // A pause or sign-out asked and waiting: for this call's end, or (ready, a pool member)
  // for the pool's calls ringing for them. Shown as long as it waits, not only as a toast.
  const asked = view.state === "paused" || !view.pending_pause ? "" : (view.pending_sign_out ? "sign_out" : "pause");
  el.dataset.asked = asked;
  const when = view.state === "ready" ? "held" : view.state === "wrap_up" ? "after_wrap_up" : "after_call";
  if (asked) el.textContent += ` · ${M[`${asked}_${when}`]}`;
  document.body.dataset.seat = view.state;
  clearInterval(wrapTimer);
  const w = $("wrapup");
  if (view.state === "wrap_up" && view.wrap_up_until) {
    const now = view.server_now ? Date.parse(view.server_now) : Date.now();
    wrapEnd = performance.now() + Math.max(0, Date.parse(view.wrap_up_until) - now);
    const tick = () => {
      const left = Math.max(0, Math.ceil((wrapEnd - performance.now()) / 1000));
      w.textContent = fmt(M.wrapup_left, { s: left });
    };
    tick();
    w.hidden = false;
    wrapTimer = setInterval(tick, 1000);
  } else {
    w.hidden = true;
  }
  const preview = view.state === "ready" && view.preview;
  $("preview").hidden = !preview;
  if ((view.state === "ready" && !view.preview) || view.state === "paused" || view.state === "offline") {
    clearPop();
  }
  if (view.state === "ringing") {
    $("pop-empty").textContent = M.ringing + "…";
  } else if (view.state === "ready" && !view.preview) {
    // A newcomer who pressed Ready and hears nothing is told why (e.g. between the windows).
    $("pop-empty").textContent = M.waiting;
  }
}

// -- the screen pop ------------------------------------------------------------------------
let current = null; // the pop on screen (its lead id is what a result is saved for)

function cell(row, text, cls) {
  const td = document.createElement("td");
  td.textContent = text ?? "—";
  if (cls) td.className = cls;
  row.appendChild(td);
  return td;
}

function localTime(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return d.toLocaleString(document.documentElement.lang, { timeZone: DESK_TZ, month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" });
}

function whyText(why) {
  if (!why) return "";
  return fmt(M[`why_${why.code}`] || why.code, why);
}

function showPop(p) {
  current = p;
  $("pop-empty").hidden = true;
  $("pop-body").hidden = false;
  $("pop-name").textContent = p.customer.name || "—";
  $("pop-number").textContent = p.customer.phone || "";
  $("pop-why").textContent = whyText(p.why);
  $("pop-plate").textContent = p.policy.plate_number || "—";
  $("pop-model").textContent = p.policy.make_model || "—";
  $("pop-use").textContent = p.policy.use_type || "—";
  $("pop-policy").textContent = p.policy.policy_number;
  $("pop-expiry").textContent = `${p.policy.expiry_date} (${p.policy.days_to_expiry})`;
  $("pop-previous").textContent = p.policy.previous_policy_number || "—";
  $("pop-campaign").textContent = (M.kinds[p.lead.kind] || p.lead.kind) + " · " + (M.kinds[p.campaign] || p.campaign);
  const phones = $("pop-phones");
  phones.replaceChildren();
  for (const ph of p.phones) {
    const tr = document.createElement("tr");
    cell(tr, ph.number, ph.number === p.customer.phone ? "dialled" : "");
    cell(tr, M.phone_kinds[ph.kind] || ph.kind);
    cell(tr, M.accuracy[ph.accuracy] || ph.accuracy, `acc-${ph.accuracy}`);
    phones.appendChild(tr);
  }
  const hist = $("pop-history");
  hist.replaceChildren();
  for (const a of p.history) {
    const tr = document.createElement("tr");
    cell(tr, localTime(a.at));
    cell(tr, a.number);
    cell(tr, a.outcome ? (M.outcomes[a.outcome] || a.outcome) : null);
    cell(tr, a.contact_result ? (M.results[a.contact_result] || a.contact_result) : null);
    const td = cell(tr, "");
    if (a.recording_id) {
      // Only the recordings she may play come with an id (her own calls'); the newest is
      // the one Alt+L plays.
      const b = document.createElement("button");
      b.type = "button";
      b.className = "play";
      b.dataset.recording = a.recording_id;
      b.textContent = M.play;
      if (!hist.querySelector("button.play")) {
        const k = document.createElement("kbd");
        k.textContent = "Alt+L";
        b.append(" ", k);
      }
      b.addEventListener("click", () => play(a.recording_id));
      td.appendChild(b);
    }
    hist.appendChild(tr);
  }
  loadSlots(p.lead.kind);
}

function clearPop() {
  current = null;
  $("pop-body").hidden = true;
  $("pop-empty").hidden = false;
  $("pop-empty").textContent = $("pop-empty").dataset.text || $("pop-empty").textContent;
}

function playNewest() {
  const b = document.querySelector("#pop-history button.play");
  if (b) play(b.dataset.recording); else toast(M.no_recording, true);
}

function play(id) {
  const player = $("player");
  player.hidden = false;
  player.src = `/api/recordings/${id}/audio`;
  player.play().catch(() => {});
}

// -- the disposition form ----------------------------------------------------------------
function chosenResult() {
  const r = document.querySelector('input[name="result"]:checked');
  return r ? r.value : null;
}

function apptValue() {
  // The desk's wall-clock time: a working day from the list and a time typed as HH:MM.
  const day = $("appt-day").value;
  const t = $("appt-time").value.trim();
  if (!day || !/^\d{1,2}:\d{2}$/.test(t)) return null;
  return `${day}T${t.padStart(5, "0")}:00${DESK_OFFSET}`;
}

let checkSeq = 0;
async function checkAppt() {
  const msg = $("appt-msg");
  const at = apptValue();
  msg.className = "hint";
  if (!at) { msg.textContent = ""; return; }
  const seq = ++checkSeq;
  const kind = current ? current.lead.kind : "renewal";
  try {
    const r = await api("GET", `/api/seat/appointment-check?kind=${encodeURIComponent(kind)}&at=${encodeURIComponent(at)}`);
    if (seq !== checkSeq) return;
    msg.textContent = r.ok ? M.appt_ok : fmt(M[r.code] || r.reason, r.params || {});
    msg.classList.toggle("bad", !r.ok);
  } catch (err) {
    msg.textContent = explain(err);
  }
}

let slots = [];

function showTimes() {
  // Only the times inside the chosen day's calling windows, every 15 minutes.
  const day = $("appt-day").value;
  const list = $("appt-times");
  list.replaceChildren();
  const windows = slots.filter((s) => s.day === day);
  $("appt-windows").textContent = windows.map((s) => `${s.start}–${s.end}`).join(", ");
  for (const w of windows) {
    const [h0, m0] = w.start.split(":").map(Number);
    const [h1, m1] = w.end.split(":").map(Number);
    for (let m = Math.ceil((h0 * 60 + m0) / 15) * 15; m < h1 * 60 + m1; m += 15) {
      const o = document.createElement("option");
      o.value = `${String(Math.floor(m / 60)).padStart(2, "0")}:${String(m % 60).padStart(2, "0")}`;
      list.appendChild(o);
    }
  }
}

async function loadSlots(kind) {
  try {
    const r = await api("GET", `/api/seat/appointment-slots?kind=${encodeURIComponent(kind)}`);
    slots = r.slots;
    const sel = $("appt-day");
    const keep = sel.value;
    sel.length = 1;
    for (const day of [...new Set(slots.map((s) => s.day))]) {
      const o = document.createElement("option");
      o.value = day;
      o.textContent = new Date(`${day}T12:00:00${DESK_OFFSET}`).toLocaleDateString(
        document.documentElement.lang, { timeZone: DESK_TZ, weekday: "short", month: "2-digit", day: "2-digit" });
      sel.appendChild(o);
    }
    sel.value = keep;
    showTimes();
  } catch { /* the picker still takes a typed time */ }
}

async function save(ev) {
  if (ev) ev.preventDefault();
  const err = $("dispose-error");
  err.textContent = "";
  if (!current) { err.textContent = M.no_lead; return; }
  const result = chosenResult();
  if (!result) { err.textContent = M.no_result; return; }
  const body = { lead_id: current.lead.id, result, note: $("note").value, callback_at: apptValue() };
  if (result === "renewed" && $("premium").value) body.premium = $("premium").value;
  if (result === "renewed" && $("new-policy").value) body.new_policy_number = $("new-policy").value;
  try {
    await api("POST", "/api/seat/disposition", body);
    $("dispose-form").reset();
    showTimes();
    $("premium-row").hidden = true;
    $("appt-msg").textContent = "";
    toast(M.saved);
    loadDay();
  } catch (e) {
    err.textContent = explain(e);
  }
}

// -- my day ------------------------------------------------------------------------------
function li(list, text, href) {
  const item = document.createElement("li");
  if (href) {
    const a = document.createElement("a");
    a.href = href;
    a.textContent = text;
    item.appendChild(a);
  } else {
    item.textContent = text;
  }
  list.appendChild(item);
}

async function loadDay() {
  let d;
  try { d = await api("GET", "/api/seat/day"); } catch { return; }
  const q = $("day-queue");
  q.replaceChildren();
  for (const [kind, c] of Object.entries(d.queue)) {
    const p = document.createElement("p");
    p.textContent = `${M.kinds[kind] || kind}: ${c.total} ${M.total} · ${c.due} ${M.due}`;
    q.appendChild(p);
  }
  if (!q.children.length) q.textContent = M.none;
  const left = d.deadline.seconds_left;
  $("day-deadline").textContent = fmt(M.deadline_left, {
    n: d.deadline.missing.length, h: Math.floor(left / 3600), m: Math.floor(left % 3600 / 60) });
  const miss = $("day-missing");
  miss.replaceChildren();
  for (const m of d.deadline.missing) li(miss, `${m.customer} ${m.plate || ""}`, `/seat/leads/${m.lead_id}`);
  const ap = $("day-appointments");
  ap.replaceChildren();
  for (const a of d.appointments) li(ap, `${localTime(a.at)} ${a.customer} ${a.plate || ""}`, `/seat/leads/${a.lead_id}`);
  const fin = $("day-finished");
  fin.replaceChildren();
  $("day-finished-count").textContent = `(${d.finished.length})`;
  for (const f of d.finished.slice(0, 10)) li(fin, `${f.customer} · ${M.results[f.result] || f.result}`, `/seat/leads/${f.lead_id}`);
}

// -- live updates ------------------------------------------------------------------------
function connect() {
  const es = new EventSource("/api/seat/events");
  es.addEventListener("open", () => { $("conn").className = "conn ok"; $("conn").textContent = ""; });
  es.addEventListener("seat", (e) => {
    const view = JSON.parse(e.data);
    seatEvents += 1;
    const before = seat.state;
    showSeat(view);
    if (view.state === "ready" && before === "wrap_up") loadDay();
    if (view.state === "wrap_up" && before !== "wrap_up") {
      // The call is over: its outcome and talk time join the history on screen.
      api("GET", "/api/seat/pop").then(showPop, () => {});
    }
  });
  es.addEventListener("pop", (e) => showPop(JSON.parse(e.data)));
  es.addEventListener("error", () => { $("conn").className = "conn bad"; $("conn").textContent = M.disconnected; });
}

// -- keys ----------------------------------------------------------------------------------
const ACTIONS = {
  s: () => act("POST", "/api/seat/sign-in", {}),
  // Ready while not signed in to the seat: signed in and ready in one step (what a newcomer
  // presses first, following the hint on the empty screen).
  r: () => (seat.state === "offline"
    ? act("POST", "/api/seat/sign-in", { ready: true })
    : act("POST", "/api/seat/ready")),
  p: async () => {
    const after = await act("POST", "/api/seat/pause", { reason: $("pause-reason").value });
    // On a call the pause waits for its end: say so, or the key seems to do nothing.
    if (after && (after.state === "ringing" || after.state === "on_call")) toast(M.pause_after_call);
    else if (after && after.state === "ready" && after.pending_pause) toast(M.pause_held);
  },
  o: async () => {
    const after = await act("POST", "/api/seat/sign-out");
    if (after && after.pending_sign_out) toast(M.sign_out_held);
  },
  h: () => act("POST", "/api/seat/hangup"),
  c: () => act("POST", "/api/seat/preview/confirm"),
  k: () => act("POST", "/api/seat/preview/skip"),
  n: () => $("note").focus(),
  a: () => $("appt-day").focus(),
  m: () => { loadDay(); $("day-title").scrollIntoView(); },
  l: () => playNewest(),
};

function chooseResult(i) {
  const r = document.querySelector(`input[name="result"][data-index="${i}"]`);
  if (r) { r.checked = true; r.focus(); r.dispatchEvent(new Event("change", { bubbles: true })); }
}

document.addEventListener("keydown", (e) => {
  if (e.ctrlKey && e.key === "Enter") { save(e); return; }
  if (!e.altKey || e.ctrlKey || e.metaKey) return;
  const key = e.code.startsWith("Key") ? e.code.slice(3).toLowerCase() : e.code.startsWith("Digit") ? e.code.slice(5) : "";
  if (/^[1-9]$/.test(key)) { e.preventDefault(); chooseResult(key); return; }
  const fn = ACTIONS[key];
  if (fn) { e.preventDefault(); fn(); }
});

for (const b of document.querySelectorAll("button[data-key]")) {
  b.addEventListener("click", () => ACTIONS[b.dataset.key]());
}
$("dispose-form").addEventListener("submit", save);
$("appt-day").addEventListener("change", () => {
  showTimes();
  checkAppt();
});
$("appt-time").addEventListener("input", checkAppt);
$("results").addEventListener("change", () => {
  const renewed = chosenResult() === "renewed";
  $("premium-row").hidden = !renewed;
});
$("pop-empty").dataset.text = $("pop-empty").textContent;

async function start() {
  // The seat and its pop come rendered into the page (no round trip before it can be used);
  // the event stream then sends the seat as it is and every change after.
  const first = JSON.parse($("first-view").textContent);
  showSeat(first.seat);
  if (first.pop) showPop(first.pop);
  connect();
  loadDay();
  document.body.dataset.ready = "1";
  performance.mark("seat-ready"); // what bench/bench_seat_page.py measures page load to
}
start();

// The desk pages: one module, no framework. Actions go through the JSON API with the
// session's CSRF token; messages come translated from the page (#messages).

const M = JSON.parse(document.getElementById("messages").textContent);
const CSRF = document.querySelector('meta[name="csrf-token"]').content;
const $ = (id) => document.getElementById(id);
const PAGE = document.querySelector("main.desk").dataset.page;

function fmt(text, params = {}) {
  return text.replace(/\{(\w+)\}/g, (_, k) => (k in params ? String(params[k]) : `{${k}}`));
}

async function api(method, path, body) {
  const opts = { method, headers: { "X-CSRF-Token": CSRF }, credentials: "same-origin" };
  if (body instanceof FormData) {
    opts.body = body;
  } else if (body !== undefined) {
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

function problem(err) {
  return fmt(M.error || "{reason}", { reason: err.message });
}

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function row(cells) {
  const tr = document.createElement("tr");
  for (const c of cells) tr.append(c instanceof Node ? c : el("td", c));
  return tr;
}

// -- a recording: player, waveform, keys, review --------------------------------------------
function drawWave(canvas, peaks, played) {
  const ctx = canvas.getContext("2d");
  const { width, height } = canvas;
  ctx.clearRect(0, 0, width, height);
  if (!peaks.length) return;
  const bar = width / peaks.length;
  peaks.forEach((p, i) => {
    const h = Math.max(1, Math.min(1, p) * (height - 4));
    ctx.fillStyle = (i + 0.5) / peaks.length <= played ? "#0b5cad" : "#9fb3c8";
    ctx.fillRect(i * bar, (height - h) / 2, Math.max(1, bar - 1), h);
  });
}

function clockText(s) {
  const t = Math.max(0, Math.floor(s || 0));
  return `${Math.floor(t / 60)}:${String(t % 60).padStart(2, "0")}`;
}

function initPlayer() {
  const audio = $("audio");
  if (!audio) return;
  const canvas = $("wave");
  const peaks = JSON.parse(canvas.dataset.peaks || "[]").map(Number);
  const duration = () => (Number.isFinite(audio.duration) ? audio.duration : 0);
  const redraw = () => {
    drawWave(canvas, peaks, duration() ? audio.currentTime / duration() : 0);
    $("clock").textContent = clockText(audio.currentTime);
  };
  const setState = () => {
    const st = audio.paused ? "paused" : "playing";
    $("play-state").dataset.state = st;
    $("play-state").textContent = M[st];
  };
  const toggle = () => (audio.paused ? audio.play().catch(() => {}) : audio.pause());
  const skip = (by) => {
    audio.currentTime = Math.max(0, Math.min(duration() || Infinity, audio.currentTime + by));
    redraw();
  };
  const next = () => { if (audio.dataset.next) location.assign(audio.dataset.next); };
  audio.addEventListener("timeupdate", redraw);
  audio.addEventListener("seeked", redraw);
  audio.addEventListener("loadedmetadata", redraw);
  audio.addEventListener("play", setState);
  audio.addEventListener("pause", setState);
  canvas.addEventListener("click", (e) => {
    const box = canvas.getBoundingClientRect();
    if (duration()) audio.currentTime = ((e.clientX - box.left) / box.width) * duration();
  });
  $("btn-play").addEventListener("click", toggle);
  $("btn-back5").addEventListener("click", () => skip(-5));
  $("btn-fwd5").addEventListener("click", () => skip(5));
  $("btn-next").addEventListener("click", next);
  document.addEventListener("keydown", (e) => {
    if (!e.altKey || e.ctrlKey || e.metaKey) return;
    const act = { KeyK: toggle, KeyJ: () => skip(-5), KeyL: () => skip(5), KeyN: next }[e.code];
    if (act) { e.preventDefault(); act(); }
  });
  setState();
  redraw();
}

function deskTime(iso, tz) {
  // The desk's wall clock, whatever the browser's zone: 2026-01-05 15:30.
  const parts = new Intl.DateTimeFormat("en-CA", {
    timeZone: tz, year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", hourCycle: "h23",
  }).formatToParts(new Date(iso));
  const p = Object.fromEntries(parts.map((x) => [x.type, x.value]));
  return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}`;
}

function initReview() {
  const form = $("review-form");
  if (!form) return;
  const failed = () => $("passed-no").checked;
  form.addEventListener("change", () => { $("callback-row").hidden = !failed(); });
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const msg = $("review-msg");
    msg.className = "bad";
    const scores = {};
    for (const input of form.querySelectorAll('input[name="score"]')) {
      const v = Number(input.value);
      if (input.value === "" || !Number.isInteger(v) || v < 0 || v > Number(input.max)) {
        msg.textContent = fmt(M.scores, { max: input.max });
        input.focus();
        return;
      }
      scores[input.dataset.item] = v;
    }
    if (!$("passed-yes").checked && !failed()) { msg.textContent = M.choose; return; }
    const body = { scores, passed: !failed() };
    const note = $("review-note").value.trim();
    if (note) body.comment = note;
    const at = $("callback-at").value;
    // The picker shows the desk's wall-clock time; the API wants the offset with it.
    if (failed() && at) body.callback_at = `${at.length === 16 ? at + ":00" : at}${form.dataset.offset}`;
    try {
      const review = await api("POST", `/api/recordings/${form.dataset.id}/reviews`, body);
      msg.className = "good";
      msg.textContent = review.callback_at
        ? fmt(M.booked, { at: deskTime(review.callback_at, form.dataset.tz) })
        : M.saved;
      msg.dataset.callbackAt = review.callback_at || "";
      form.querySelector("button[type=submit]").disabled = true;
      // The new review joins the list at once (the page shows it after a reload the same).
      $("no-reviews")?.remove();
      const li = el("li", `${deskTime(review.created_at, form.dataset.tz)} · ${M[review.passed ? "passed" : "failed"]} · ${review.total}${note ? ` · ${note}` : ""}`, review.passed ? "good" : "bad");
      $("review-list").append(li);
    } catch (err) {
      msg.textContent = problem(err);
    }
  });
}

// -- import ------------------------------------------------------------------------------------
function showReport(job) {
  const r = job.report;
  $("import-report").hidden = false;
  for (const k of ["read", "imported", "updated", "skipped", "rejected"]) $(`n-${k}`).textContent = r[k];
  const rows = $("reject-rows");
  rows.replaceChildren(...r.errors.map((e) => row([e.row, e.column, e.value, e.reason])));
  $("reject-table").hidden = r.errors.length === 0;
  $("rejects-box").hidden = r.errors_total === 0;
  $("rejects-link").href = `/desk/imports/${job.id}/rejects.xlsx`;
  $("reject-more").textContent = r.errors_total > r.errors_shown
    ? fmt(M.more, { shown: r.errors_shown, total: r.errors_total }) : "";
}

async function follow(job) {
  $("import-progress").hidden = false;
  $("import-title").textContent = fmt(M.importing, { name: job.file_name });
  for (;;) {
    const bar = $("import-bar");
    bar.max = job.total || 1;
    bar.value = Math.min(job.done, bar.max);
    $("import-count").textContent = job.total
      ? fmt(M.rows, { done: job.done, total: job.total }) : fmt(M.rows_nototal, { done: job.done });
    if (job.state === "done") { bar.value = bar.max; showReport(job); return; }
    if (job.state === "failed") { $("import-error").textContent = fmt(M.failed, { reason: job.error }); return; }
    await new Promise((ok) => setTimeout(ok, 400));
    job = await api("GET", `/api/desk/imports/${job.id}`);
  }
}

function initImport() {
  $("import-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    $("import-error").textContent = "";
    $("import-report").hidden = true;
    const file = $("import-file").files[0];
    if (!file) { $("import-error").textContent = M.no_file; return; }
    const data = new FormData();
    data.append("kind", $("import-kind").value);
    data.append("file", file);
    $("btn-import").disabled = true;
    try {
      await follow(await api("POST", "/api/desk/imports", data));
    } catch (err) {
      $("import-error").textContent = problem(err);
    } finally {
      $("btn-import").disabled = false;
    }
  });
}

// -- distribution ----------------------------------------------------------------------------
function skipReason(k) {
  if (k.reason.startsWith("inactive")) return M.inactive;
  if (k.reason.startsWith("on leave")) return M.on_leave;
  if (k.reason.startsWith("not up to date")) return fmt(M.overdue, { count: k.blocking_count });
  return k.reason;
}

let preview = null;

function randomSeed() {
  // The page draws the seed, below 2^53: a JSON number beyond that loses digits in a browser,
  // and the run must get back exactly the seed its preview used.
  const [hi, lo] = crypto.getRandomValues(new Uint32Array(2));
  return (hi & 0x1fffff) * 2 ** 32 + lo;
}

function showDeal(work, previewed) {
  const d = work.distribution;
  $("dist-result").hidden = false;
  $("dist-result").dataset.kind = d.dry_run ? "preview" : "run";
  $("dist-title").textContent = d.dry_run
    ? fmt(M.preview, { day: d.day }) : fmt(M.ran, { day: d.day, run: d.run_id });
  $("dist-summary").textContent = fmt(M.summary, {
    dealt: d.dealt, due: d.due, n: d.specialists.length, spread: d.spread, seed: d.seed,
  });
  const before = new Map((previewed ? previewed.distribution.specialists : []).map((s) => [s.id, s]));
  $("dist-match-head").hidden = !previewed;
  $("dist-rows").replaceChildren(...d.specialists.map((s) => {
    const cells = [s.name, s.new, s.total];
    if (previewed) {
      const p = before.get(s.id);
      const same = p && p.new === s.new && p.total === s.total;
      cells.push(el("td", same ? M.match : M.differs, same ? "good match" : "bad differs"));
    }
    const tr = row(cells);
    tr.dataset.id = s.id;
    return tr;
  }));
  $("dist-skipped").replaceChildren(...(d.skipped.length
    ? d.skipped.map((k) => { const li = el("li", `${k.name}: ${skipReason(k)}`); li.dataset.id = k.id; return li; })
    : [el("li", M.nobody, "empty")]));
  $("dist-notes").replaceChildren(...(work.notes || []).map((n) => el("li", n)));
}

function initDistribution() {
  for (const span of document.querySelectorAll("#audit .skip")) {
    span.title = skipReason({ reason: span.dataset.reason, blocking_count: span.dataset.count });
  }
  $("btn-preview").addEventListener("click", async () => {
    $("dist-error").textContent = "";
    try {
      preview = await api("POST", "/api/distribution", {
        date: $("dist-day").value, dry_run: true, seed: randomSeed(),
      });
      showDeal(preview, null);
      $("btn-run").disabled = false;
    } catch (err) {
      $("dist-error").textContent = problem(err);
    }
  });
  $("btn-run").addEventListener("click", async () => {
    if (!preview) return;
    $("dist-error").textContent = "";
    $("btn-run").disabled = true;
    try {
      // The preview's seed: the same pure allocation over the same leads deals the same.
      const work = await api("POST", "/api/distribution", {
        date: preview.distribution.day, seed: preview.distribution.seed,
      });
      showDeal(work, preview);
      preview = null;
    } catch (err) {
      $("dist-error").textContent = problem(err);
      $("btn-run").disabled = false;
    }
  });
}

// -- campaigns -------------------------------------------------------------------------------
const NUMBERS = {
  concurrency: "int", trunk_max_calls: "int", trunk_max_cps: "float",
  pacing_ratio_cap: "float", target_abandon: "float", abandon_cap: "float",
};
// The service's pacing checks name the setting in words, not by its field.
const PHRASES = [
  ["the target abandon rate", "target_abandon"],
  ["the abandon cap", "abandon_cap"],
  ["the pacing ratio cap", "pacing_ratio_cap"],
  ["a reminder campaign", "pooled"],
];

function campaignBody(form) {
  const body = {};
  for (const input of form.querySelectorAll("input, select")) {
    const v = input.value.trim();
    if (v === "") continue;
    const kind = NUMBERS[input.name];
    if (input.name === "pooled") { body.pooled = v === "true"; continue; }
    // A number that is not one goes as text: the API's check names the field.
    const number = kind && /^-?\d+(\.\d+)?$/.test(v);
    // Rates are typed in percent and sent as fractions (3 -> 0.03).
    body[input.name] = number ? Number(v) / (input.dataset.percent ? 100 : 1) : v;
  }
  return body;
}

function showCampaign(form, c) {
  const st = form.querySelector(".run-state");
  st.dataset.running = c.running ? "1" : "0";
  st.className = `run-state ${c.running ? "on" : "off"}`;
  st.textContent = c.running ? M.running : M.stopped;
  form.querySelector(".start").hidden = c.running;
  form.querySelector(".stop").hidden = !c.running;
}

function campaignErrors(form, err) {
  const list = form.querySelector(".field-errors");
  const fields = new Set(((err.data && err.data.errors) || []).map((e) => e.field.split(".")[0]));
  if (!fields.size) {
    // The service's own checks name the field first ("concurrency must …", "caller_id: …").
    const named = Object.keys(M.fields).find((f) => err.message.startsWith(f));
    const phrase = PHRASES.find(([p]) => err.message.toLowerCase().startsWith(p));
    if (named) fields.add(named);
    else if (phrase) fields.add(phrase[1]);
  }
  for (const input of form.querySelectorAll("input, select")) {
    input.setAttribute("aria-invalid", fields.has(input.name) ? "true" : "false");
  }
  list.replaceChildren(...(fields.size
    ? [...fields].map((f) => { const li = el("li", M.fields[f] || problem(err)); li.dataset.field = f; return li; })
    : [el("li", problem(err))]));
}

function initCampaigns() {
  for (const form of document.querySelectorAll("form.campaign")) {
    const name = encodeURIComponent(form.dataset.name);
    const saved = form.querySelector(".saved");
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      saved.textContent = "";
      try {
        showCampaign(form, await api("PATCH", `/api/campaigns/${name}`, campaignBody(form)));
        form.querySelector(".field-errors").replaceChildren();
        for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
        saved.textContent = M.saved;
      } catch (err) {
        campaignErrors(form, err);
      }
    });
    for (const action of ["start", "stop"]) {
      form.querySelector(`.${action}`).addEventListener("click", async () => {
        try {
          showCampaign(form, await api("POST", `/api/campaigns/${name}/${action}`));
        } catch (err) {
          campaignErrors(form, err);
        }
      });
    }
  }
}

// -- specialists and seats -------------------------------------------------------------------
function initPeople() {
  const msg = $("people-msg");
  const fail = (err) => { msg.className = "bad"; msg.textContent = problem(err); };
  $("add-person").addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = Object.fromEntries(new FormData(e.target).entries());
    try {
      await api("POST", "/api/desk/people", body);
      msg.className = "good";
      msg.textContent = fmt(M.added, { name: body.name });
      location.reload();
    } catch (err) { fail(err); }
  });
  for (const tr of document.querySelectorAll("#people tbody tr")) {
    const id = tr.dataset.id;
    const name = tr.querySelector(".name").textContent;
    const state = async (body) => {
      try { await api("POST", `/api/desk/people/${id}/state`, body); location.reload(); } catch (err) { fail(err); }
    };
    tr.querySelector(".disable")?.addEventListener("click", () => {
      if (confirm(fmt(M.confirm_disable, { name }))) state({ active: false });
    });
    tr.querySelector(".enable")?.addEventListener("click", () => state({ active: true }));
    const leave = tr.querySelector(".leave");
    leave?.addEventListener("click", () => state({ on_leave: leave.dataset.on !== "1" }));
    tr.querySelector(".reset")?.addEventListener("click", async () => {
      const password = prompt(fmt(M.reset_prompt, { name }));
      if (!password) return;
      try {
        await api("POST", `/api/users/${id}/password`, { password });
        msg.className = "good";
        msg.textContent = fmt(M.reset_done, { name });
      } catch (err) { fail(err); }
    });
  }
}

const INIT = {
  desk_recording: () => { initPlayer(); initReview(); },
  desk_import: initImport,
  desk_distribution: initDistribution,
  desk_campaigns: initCampaigns,
  desk_people: initPeople,
};
(INIT[PAGE] || (() => {}))();
document.body.dataset.ready = "1";

// Inspector (/ui/inspector), for a phone: the task inbox, a task's clue and evidence, accept,
// and the field report (result, note, photos from the camera, the phone's position when the
// inspector allows it). A report made without network is kept in IndexedDB (photos are too
// big for localStorage) and sent when the network returns ('online' event, page load, and a
// retry every RETRY_MS). New tasks appear without a reload: the inbox is polled.
"use strict";

const { $, el, t, label, clueTitle, api, fmtTime } = Offsite;
const POLL_MS = 5000;  // the inbox is re-read this often while the page is in view
const RETRY_MS = 15000;
const state = { tasks: new Map(), clues: new Map(), open: null, me: null, position: null,
                known: null, blobUrls: [], sending: false };

// ---- offline queue (IndexedDB: reports with their photos as Blobs) -------------------------

const DB = "offsite-inspector", STORE = "reports";

function db() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE, { keyPath: "key", autoIncrement: true });
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

async function queueOp(mode, fn) {
  const conn = await db();
  try {
    return await new Promise((resolve, reject) => {
      const tx = conn.transaction(STORE, mode);
      const req = fn(tx.objectStore(STORE));
      tx.oncomplete = () => resolve(req && req.result);
      tx.onerror = () => reject(tx.error);
    });
  } finally { conn.close(); }
}

const queued = () => queueOp("readonly", (s) => s.getAll());
const enqueue = (report) => queueOp("readwrite", (s) => s.add(report));
const dequeue = (key) => queueOp("readwrite", (s) => s.delete(key));

async function showQueue() {
  const n = (await queued()).length;
  $("queue").hidden = n === 0;
  $("queue").textContent = t("insp.queue", { n });
}

function formOf(report) {
  const form = new FormData();
  form.append("result", report.result);
  form.append("note", report.note);
  for (const p of report.photos) form.append("photos", p.blob, p.name);
  return form;
}

// Send what waits, oldest first; a report the server refuses (the task was closed or taken
// meanwhile) is dropped with a warning, a network failure leaves it queued.
async function flush() {
  if (state.sending || !navigator.onLine) return;
  state.sending = true;
  try {
    for (const report of await queued()) {
      try {
        await api(`/tasks/${report.task_id}/report`, { method: "POST", body: formOf(report) });
      } catch (e) {
        if (!(e instanceof Offsite.HttpError)) break;  // still no network
        console.warn("queued report refused", report.task_id, e.message);
      }
      await dequeue(report.key);
      if (state.open === report.task_id) $("report-msg").textContent = t("insp.sent");
    }
  } finally {
    state.sending = false;
    await showQueue();
    await loadTasks().catch(Offsite.report);
  }
}

// ---- inbox -------------------------------------------------------------------------------

// Titles for the inbox come from the clue list (GET /clues: no evidence, so nothing to
// audit); the detail with its evidence (GET /clues/{id}, audited) only when a task is opened.
async function fillTitles(tasks) {
  if (!tasks.some((x) => x.clue_id && !state.clues.has(x.clue_id))) return;
  const page = await api(`/clues?limit=1000&lang=${Offsite.lang}`);
  for (const c of page.items) state.clues.set(c.clue_id, c);
  for (const x of tasks) if (!state.clues.has(x.clue_id)) state.clues.set(x.clue_id, null);
}

async function clueDetail(task) {
  if (!task.clue_id) return null;  // a drawn inspection: no clue behind it
  try {
    const c = await api(`/clues/${encodeURIComponent(task.clue_id)}?lang=${Offsite.lang}`);
    state.clues.set(task.clue_id, c);
    return c;
  } catch (e) {
    if (e instanceof Offsite.AuthError) throw e;
    return null;  // no access to the clue: the task's own fields
  }
}

function taskTitle(task, clue) {
  if (!task.clue_id || (task.joint && !clue)) {
    return t(task.joint ? "task.title.joint" : "task.title.inspection", { entity: task.entity_name || task.entity });
  }
  return clue ? clueTitle(clue) : t("title.other", { kind: label("kind", task.kind), place: task.subject });
}

async function loadTasks() {
  if (!navigator.onLine || document.hidden) return;
  const tasks = await api("/tasks?limit=200");
  const fresh = state.known ? tasks.filter((x) => !state.known.has(x.id)).map((x) => x.id) : [];
  state.known = new Set(tasks.map((x) => x.id));
  state.tasks = new Map(tasks.map((x) => [x.id, x]));
  await fillTitles(tasks);
  renderTasks(fresh);
  if (state.open !== null && state.tasks.has(state.open)) renderTask(state.open, false);
}

function renderTasks(fresh = []) {
  const order = { assigned: 0, accepted: 1, open: 2, closed: 3 };
  const sev = (x) => ({ high: 0, medium: 1, low: 2 })[(state.clues.get(x.clue_id) || {}).severity] ?? 3;
  const tasks = [...state.tasks.values()].sort((a, b) => (order[a.state] - order[b.state])
    || (sev(a) - sev(b)) || (new Date(b.created_at) - new Date(a.created_at)));
  $("tasks").replaceChildren(...tasks.map((task) => {
    const clue = state.clues.get(task.clue_id);
    const li = el("li", { class: `sev-${clue ? clue.severity : "low"}` + (fresh.includes(task.id) ? " new" : ""),
                          "data-task-id": task.id },
      el("div", { class: "title", text: taskTitle(task, clue) }),
      el("div", { class: "tags" },
        el("span", { class: `state ${task.state}`, text: label("state", task.state) }),
        clue ? el("span", { class: `sev sev-${clue.severity}`, text: label("severity", clue.severity) }) : null,
        task.overdue ? el("span", { class: "overdue", text: t("insp.overdue") }) : null),
      el("div", { class: "meta", text: t("insp.due", { time: fmtTime(task.due_at) }) }));
    li.addEventListener("click", () => openTask(task.id));
    return li;
  }));
  $("tasks-empty").hidden = tasks.length > 0;
}

// ---- one task ----------------------------------------------------------------------------

function fact(k, v) { return v ? el("tr", {}, el("th", { text: t(k) }), el("td", { text: String(v) })) : null; }

function openTask(id) {
  state.open = id;
  $("inbox").hidden = true;
  $("task").hidden = false;
  $("report").reset();
  $("previews").replaceChildren();
  $("report-msg").textContent = "";
  $("task-evidence").replaceChildren();
  renderTask(id, false);
  clueDetail(state.tasks.get(id)).then(() => state.open === id && renderTask(id, true))
    .catch(Offsite.report);
  locate();
  window.scrollTo(0, 0);
}

function closeTask() {
  state.open = null;
  $("task").hidden = true;
  $("inbox").hidden = false;
  clearBlobs();
}

function renderTask(id, withEvidence) {
  const task = state.tasks.get(id);
  if (!task) return;
  const clue = state.clues.get(task.clue_id);
  $("task-title").textContent = taskTitle(task, clue);
  $("task-tags").replaceChildren(...[
    el("span", { class: `state ${task.state}`, text: label("state", task.state) }),
    clue ? el("span", { class: `sev sev-${clue.severity}`, text: label("severity", clue.severity) }) : null,
    task.overdue ? el("span", { class: "overdue", text: t("insp.overdue") }) : null].filter(Boolean));
  const zones = clue ? (clue.zones || []).map((z) => z.name || z.id).join(t("list.sep")) : "";
  $("task-facts").replaceChildren(...[
    fact("field.kind", label("kind", task.kind)),
    fact("field.subject", clue && clue.resource_name ? `${clue.resource_name} (${task.subject})` : task.subject),
    fact("field.zones", zones), fact("field.start", fmtTime(task.clue_start)),
    fact("field.time", fmtTime(task.clue_time)), fact("field.due", fmtTime(task.due_at)),
    fact("field.summary", task.summary), fact("field.site", task.site),
    fact("field.entity", task.entity_name || task.entity),
    fact("field.inspectors", (task.inspectors || []).join(t("list.sep"))),
    fact("field.visit", task.visit_date),
  ].filter(Boolean));
  const mine = (task.inspectors || [task.assignee]).includes(state.me.id);
  $("accept").hidden = !(mine && task.state === "assigned");
  $("report").hidden = !(mine && ["assigned", "accepted"].includes(task.state));
  $("task-closed").hidden = task.state !== "closed";
  $("task-closed").textContent = t("insp.closed", { result: label("insp.result", task.result) });
  if (withEvidence) showEvidence(clue);
}

function clearBlobs() {
  for (const u of state.blobUrls) URL.revokeObjectURL(u);
  state.blobUrls = [];
}

async function showEvidence(clue) {
  clearBlobs();
  const box = $("task-evidence");
  box.replaceChildren();
  if (!clue || !clue.evidence_access || !clue.evidence) return;
  for (const ev of clue.evidence) {
    const media = ev.media_type.split(";")[0].trim();
    if (!["image/png", "image/jpeg", "video/mp4"].includes(media)) continue;
    const fig = el("figure", { "data-evidence-id": ev.id });
    box.append(fig);
    try {
      const blob = await api(`/evidence/${encodeURIComponent(ev.id)}/content`, { blob: true });
      const url = URL.createObjectURL(new Blob([blob], { type: media }));
      state.blobUrls.push(url);
      fig.append(media === "video/mp4" ? el("video", { src: url, controls: true, preload: "metadata" })
        : el("img", { src: url, alt: ev.name }), el("figcaption", { text: ev.name }));
    } catch (e) { fig.append(el("figcaption", { class: "error", text: String(e.message || e) })); }
  }
}

function locate() {
  state.position = null;
  $("position").textContent = t("insp.position.none");
  if (!navigator.geolocation) return;
  navigator.geolocation.getCurrentPosition((p) => {
    state.position = { lat: p.coords.latitude, lon: p.coords.longitude, acc: p.coords.accuracy };
    $("position").textContent = positionText();
  }, () => {}, { enableHighAccuracy: true, timeout: 15000, maximumAge: 60000 });
}

function positionText() {
  const p = state.position;
  return p ? t("insp.position", { lat: p.lat.toFixed(5), lon: p.lon.toFixed(5), acc: Math.round(p.acc) }) : "";
}

async function accept() {
  const task = await api(`/tasks/${state.open}/accept`, { method: "POST" });
  state.tasks.set(task.id, task);
  renderTask(task.id, false);
  renderTasks();
}

// The API takes result, note and photos; the position goes into the note (one line), so the
// report keeps where it was made.
async function submitReport(ev) {
  ev.preventDefault();
  const result = new FormData($("report")).get("result");
  let note = $("note").value.trim();
  if (state.position) note = (note ? note + "\n" : "") + positionText();
  const photos = [...$("photos").files].map((f) => ({ name: f.name || "photo.jpg", blob: f }));
  const report = { task_id: state.open, result, note, photos, queued_at: new Date().toISOString() };
  $("send").disabled = true;
  try {
    if (!navigator.onLine) throw new TypeError("offline");
    await api(`/tasks/${state.open}/report`, { method: "POST", body: formOf(report) });
    $("report-msg").className = "notice";
    $("report-msg").textContent = t("insp.sent");
    await loadTasks();
  } catch (e) {
    if (e instanceof Offsite.HttpError || e instanceof Offsite.AuthError) {
      $("report-msg").className = "error";
      $("report-msg").textContent = t("common.error", { message: e.message });
    } else {  // no network: keep it on the phone
      await enqueue(report);
      $("report-msg").className = "queued";
      $("report-msg").textContent = t("insp.queued");
      await showQueue();
    }
  } finally {
    $("send").disabled = false;
  }
}

function previewPhotos() {
  $("previews").replaceChildren(...[...$("photos").files].map((f) => {
    const url = URL.createObjectURL(f);
    state.blobUrls.push(url);
    return el("img", { src: url, alt: f.name });
  }));
}

// ---- start -------------------------------------------------------------------------------

const login = Offsite.setupLogin(async (me) => {
  state.me = me;
  await loadTasks();
  await showQueue();
  await flush();
  setInterval(() => loadTasks().catch(Offsite.report), POLL_MS);
  setInterval(() => flush().catch(Offsite.report), RETRY_MS);
});

window.addEventListener("online", () => flush().catch(Offsite.report));
document.addEventListener("visibilitychange", () => loadTasks().catch(Offsite.report));
$("back").addEventListener("click", closeTask);
$("accept").addEventListener("click", () => accept().catch((e) => {
  $("report-msg").className = "error";
  $("report-msg").textContent = t("common.error", { message: e.message || e });
}));
$("report").addEventListener("submit", (ev) => submitReport(ev).catch(Offsite.report));
$("photos").addEventListener("change", previewPhotos);
Offsite.onLang(() => {
  state.clues.clear();
  showQueue().catch(Offsite.report);
  loadTasks().catch(Offsite.report);
  if (state.open !== null) $("position").textContent = positionText() || t("insp.position.none");
});

(async () => {
  await Offsite.initLang();
  if (Offsite.initToken()) await login.run(); else login.showLogin("");
})();

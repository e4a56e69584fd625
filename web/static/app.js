// Monitoring center (/ui/): the clue list with titles, severity and counts, live from
// /clues/stream (EventSource cannot send headers, so the token goes as the access_token
// query parameter); the map is in center-map.js, the selected clue and health in
// center-detail.js (both loaded first; this file declares the shared `state` and starts).
"use strict";

const { $, el, t, label, clueTitle, api, fmtTime } = Offsite;
const PAGE = 100;
const state = {
  clues: new Map(), order: [], cursor: null, selected: null, source: null, config: null,
  zones: [], map: null, zoneLayer: null, cluster: null, shapes: null, markers: new Map(),
  blobUrls: [], chart: null, counts: null, countTimer: null, healthTimer: null, me: null,
};

// ---- clue list and counts ----------------------------------------------------------------

function filters() {
  const since = $("f-since").value;
  return { kind: $("f-kind").value, status: $("f-status").value, modality: $("f-modality").value,
           since: since ? new Date(since + "T00:00:00").toISOString() : "" };
}

function query(extra = {}) {
  const q = new URLSearchParams({ lang: Offsite.lang, ...extra });
  for (const [k, v] of Object.entries(filters())) if (v) q.set(k, v);
  return q;
}

function matches(c) {
  const f = filters();
  return (!f.kind || c.kind === f.kind) && (!f.status || c.state === f.status)
    && (!f.modality || c.modality === f.modality) && (!f.since || new Date(c.time) >= new Date(f.since));
}

async function loadClues() {
  state.clues = new Map();
  state.order = [];
  state.cursor = null;
  await loadMore();
  loadCounts();
}

async function loadMore() {
  const q = query({ limit: String(PAGE) });
  if (state.cursor) q.set("cursor", state.cursor);
  const body = await api("/clues?" + q);
  for (const c of body.items) {
    if (!state.clues.has(c.clue_id)) state.order.push(c.clue_id);
    state.clues.set(c.clue_id, c);
  }
  state.cursor = body.next_cursor;
  $("more").hidden = !state.cursor;
  renderClues();
}

async function loadCounts() {
  const q = query();
  q.delete("lang");
  state.counts = await api("/clues/counts?" + q);
  renderCounts();
}

function countsSoon() {
  clearTimeout(state.countTimer);
  state.countTimer = setTimeout(() => loadCounts().catch(Offsite.report), 500);
}

function chip(text, cls, onClick) {
  return el("button", { type: "button", class: "chip " + (cls || ""), text, onclick: onClick });
}

function renderCounts() {
  const c = state.counts;
  if (!c) return;
  const shown = state.order.filter((id) => matches(state.clues.get(id))).length;
  $("clue-count").textContent = t("center.shown", { shown, total: c.total });
  const sev = Object.entries(c.by_severity).map(([k, n]) =>
    chip(`${label("severity", k)} ${n}`, `sev-${k}`));
  const st = Object.entries(c.by_status).sort().map(([k, n]) =>
    chip(`${label("state", k)} ${n}`, "", () => { $("f-status").value = k; reload(); }));
  const kinds = Object.entries(c.by_kind).sort((a, b) => b[1] - a[1]).map(([k, n]) =>
    chip(`${label("kind", k)} ${n}`, "", () => { $("f-kind").value = k; reload(); }));
  $("counts").replaceChildren(
    el("div", { class: "count-row" }, el("b", { text: t("center.by_severity") }), ...sev),
    el("div", { class: "count-row" }, el("b", { text: t("center.by_state") }), ...st),
    el("div", { class: "count-row" }, el("b", { text: t("center.by_kind") }), ...kinds));
  // the kind filter offers every kind counted (and keeps the chosen one)
  const chosen = $("f-kind").value;
  const all = new Set([...Object.keys(c.by_kind), ...(chosen ? [chosen] : [])]);
  $("f-kind").replaceChildren(el("option", { value: "", text: t("common.any") }),
    ...[...all].sort().map((k) => el("option", { value: k, text: label("kind", k) })));
  $("f-kind").value = chosen;
}

function clueItem(c, fresh) {
  const li = el("li", { class: `sev-${c.severity}`, "data-clue-id": c.clue_id, title: c.clue_id },
    el("div", { class: "title", text: clueTitle(c) }),
    el("div", { class: "tags" },
      el("span", { class: `sev sev-${c.severity}`, text: label("severity", c.severity) }),
      el("span", { class: `state ${c.state}`, text: label("state", c.state) }),
      el("span", { text: label("kind", c.kind) }),
      c.department_name || c.department
        ? el("span", { class: "dept", text: c.department_name || c.department }) : null,
      zoneNames(c) ? el("span", { class: "zone", text: zoneNames(c) }) : null),
    el("div", { class: "meta", text: fmtTime(c.time) }));
  if (c.clue_id === state.selected) li.classList.add("selected");
  if (fresh) li.classList.add("new");
  li.addEventListener("click", () => select(c.clue_id));
  return li;
}

function zoneNames(c) {
  return (c.zones || []).filter((z) => z.kind !== "jurisdiction").map((z) => z.name || z.id)
    .join(t("list.sep"));
}

function renderClues(freshId) {
  const shown = state.order.map((id) => state.clues.get(id)).filter(matches);
  $("clue-list").replaceChildren(...shown.map((c) => clueItem(c, c.clue_id === freshId)));
  renderCounts();
  drawClues();
}

function upsertClue(c) {
  state.clues.set(c.clue_id, c);
  state.order = [c.clue_id, ...state.order.filter((id) => id !== c.clue_id)];
  renderClues(c.clue_id);
  countsSoon();
  if (state.selected === c.clue_id) showDetail(c.clue_id, false);
}

function setConn(on) {
  $("conn").className = "conn " + (on ? "on" : "off");
  $("conn").dataset.i18n = on ? "conn.live" : "conn.offline";
  $("conn").textContent = t($("conn").dataset.i18n);
}

function openStream() {
  if (state.source) state.source.close();
  const q = new URLSearchParams({ access_token: Offsite.token, lang: Offsite.lang });
  const src = new EventSource("/clues/stream?" + q);
  src.onopen = () => setConn(true);
  src.onerror = () => {
    setConn(false);
    if (src.readyState === EventSource.CLOSED) {
      api("/me").then(openStream, (e) => {
        if (e instanceof Offsite.AuthError) login.showLogin(t("login.rejected"));
        else setTimeout(openStream, 3000);
      });
    }
  };
  src.addEventListener("clue", (ev) => upsertClue(JSON.parse(ev.data)));
  state.source = src;
}

function reload() { loadClues().catch(Offsite.report); }

// ---- start -----------------------------------------------------------------------------

const login = Offsite.setupLogin(async (me) => {
  state.me = me;
  if (!state.map) initMap();
  await Promise.all([loadZones(), loadClues()]);
  fitClues();
  loadRisk().catch(Offsite.report);  // center-risk.js
  openStream();
  await loadHealth().catch(Offsite.report);
  clearInterval(state.healthTimer);
  state.healthTimer = setInterval(() => loadHealth().catch(Offsite.report), 30000);
});

for (const id of ["f-kind", "f-status", "f-modality", "f-since"]) $(id).addEventListener("change", reload);
$("more").addEventListener("click", () => loadMore().catch(Offsite.report));
$("map-region").addEventListener("change", fitRegion);
Offsite.onLang(() => {
  setConn($("conn").classList.contains("on"));
  if (state.map) { renderRegions(); renderClues(); loadHealth().catch(Offsite.report); }
  if (risk.layer) renderRiskLegend();
  // the evidence stays (its words carry data-i18n); the chart's labels are redrawn
  if (state.selected) showDetail(state.selected, false).then((c) => c && showChart(c))
    .catch(Offsite.report);
});

(async () => {
  const resp = await fetch("/ui/config");
  state.config = await resp.json();
  await Offsite.initLang();
  if (Offsite.initToken()) await login.run(); else login.showLogin("");
})();

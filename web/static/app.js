// Monitoring center (/ui/): clues with titles, severity, counts; a Leaflet map; evidence and
// the readings around an env clue; station and camera health. Nothing from the internet: the
// libraries are vendored under /ui/vendor. The live list uses /clues/stream (EventSource
// cannot send headers, so the token goes as the access_token query parameter).
"use strict";

const { $, el, t, label, clueTitle, api, fmtTime } = Offsite;
const PAGE = 100;
const SEV_COLOR = { high: "#c62828", medium: "#ef8a00", low: "#1f77b4" };
const ZONE_STYLE = {
  jurisdiction: { color: "#6d7f8c", weight: 1.2, dashArray: "4 3", fillColor: "#f4f1e8", fillOpacity: 0.9 },
  protected_farmland: { color: "#a8921e", fillColor: "#e8d36a" },
  ecological_redline: { color: "#b33", fillColor: "#e88a8a" },
  water_source: { color: "#2a6fb0", fillColor: "#7fb8e8" },
  forest: { color: "#2e7d32", fillColor: "#7cc47c" },
  enterprise_site: { color: "#5e35b1", fillColor: "#b39ddb" },
  restricted_area: { color: "#d35400", fillColor: "#ffab66" },
};
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

// ---- map -------------------------------------------------------------------------------

function initMap() {
  // no zoom animation: a long jump (one province to another) is clearer without it, and an
  // animation that never ends (a tab in the background) would leave the map stuck
  const map = L.map("map", { maxZoom: 18, minZoom: 3, zoomAnimation: false, fadeAnimation: false });
  state.map = map;
  if (state.config.map_tile_url) {
    L.tileLayer(state.config.map_tile_url, { attribution: state.config.map_tile_attribution,
                                             maxZoom: 18 }).addTo(map);
    $("map").classList.add("tiles");
  } else {
    $("base-note").hidden = false;
  }
  map.createPane("zones").style.zIndex = 350;  // under the clues' shapes (overlayPane, 400)
  state.zoneLayer = L.geoJSON(null, {
    pane: "zones",
    style: (f) => ({ weight: 1, fillOpacity: state.config.map_tile_url ? 0.25 : 0.45,
                     ...(ZONE_STYLE[f.properties.kind] || { color: "#777", fillColor: "#ccc" }),
                     ...(state.config.map_tile_url && f.properties.kind === "jurisdiction"
                       ? { fillOpacity: 0 } : {}) }),
    onEachFeature: (f, layer) => (f.properties.kind === "jurisdiction"
      ? layer.bindTooltip(f.properties.name, { permanent: true, direction: "center",
                                               className: "zone-label" })
      : layer.bindTooltip(`${f.properties.name} · ${label("zonekind", f.properties.kind)}`,
                          { sticky: true })),
  }).addTo(map);
  state.shapes = L.layerGroup().addTo(map);
  state.cluster = L.markerClusterGroup({ maxClusterRadius: 36, showCoverageOnHover: false,
    animate: false,
    iconCreateFunction: clusterIcon }).addTo(map);
  map.setView([32.45, 119.95], 10);
}

function clusterIcon(cluster) {
  const sevs = cluster.getAllChildMarkers().map((m) => m.options.severity);
  const worst = ["high", "medium", "low"].find((s) => sevs.includes(s)) || "low";
  return L.divIcon({ html: `<div><span>${cluster.getChildCount()}</span></div>`,
                     className: `marker-cluster cluster-${worst}`, iconSize: L.point(36, 36) });
}

function fitRegion() {
  const region = $("map-region").value;
  const feats = region ? state.zones.filter((f) => f.properties.id === region) : state.zones;
  if (!feats.length) return;
  const bounds = L.geoJSON({ type: "FeatureCollection", features: feats }).getBounds();
  if (bounds.isValid()) state.map.fitBounds(bounds, { padding: [10, 10] });
}

async function loadZones() {
  const fc = await api("/zones");
  state.zones = fc.features;
  const order = [...state.zones].sort((a, b) =>
    (a.properties.kind === "jurisdiction" ? 0 : 1) - (b.properties.kind === "jurisdiction" ? 0 : 1));
  state.zoneLayer.clearLayers();
  state.zoneLayer.addData({ type: "FeatureCollection", features: order });
  renderRegions();
  fitRegion();
}

function renderRegions() {
  const chosen = state.zones.length && $("map-region").options.length ? $("map-region").value : null;
  const regions = state.zones.filter((f) => f.properties.kind === "jurisdiction" && !f.properties.parent);
  $("map-region").replaceChildren(el("option", { value: "", text: t("common.any") }),
    ...regions.map((f) => el("option", { value: f.properties.id, text: f.properties.name })));
  $("map-region").value = chosen ?? (regions[0] ? regions[0].properties.id : "");
  const kinds = [...new Set(state.zones.map((f) => f.properties.kind))].sort();
  $("legend").replaceChildren(
    ...["high", "medium", "low"].map((s) => el("span", {},
      el("i", { class: "dot", style: `background:${SEV_COLOR[s]}` }), label("severity", s))),
    ...kinds.map((k) => {
      const s = ZONE_STYLE[k] || {};
      return el("span", {}, el("i", { style: `background:${s.fillColor};border-color:${s.color}` }),
        label("zonekind", k));
    }));
}

// first view: where the clues are (else the first top-level jurisdiction)
function fitClues() {
  const pts = [...state.markers.values()].map((m) => m.getLatLng());
  if (!pts.length) return;
  $("map-region").value = "";
  state.map.fitBounds(L.latLngBounds(pts), { padding: [60, 60], maxZoom: 12 });
}

function cluePoint(c) {
  const loc = c.location;
  if (!loc) return null;
  if (loc.type === "Point") return [loc.coordinates[1], loc.coordinates[0]];
  const b = L.geoJSON(loc).getBounds();
  return b.isValid() ? [b.getCenter().lat, b.getCenter().lng] : null;
}

function drawClues() {
  if (!state.map) return;
  state.cluster.clearLayers();
  state.shapes.clearLayers();
  state.markers = new Map();
  const markers = [];
  for (const id of state.order) {
    const c = state.clues.get(id);
    if (!c || !matches(c) || !c.location) continue;
    const color = SEV_COLOR[c.severity] || SEV_COLOR.low;
    const sel = c.clue_id === state.selected ? " selected" : "";
    if (c.location.type !== "Point") {
      const shape = L.geoJSON(c.location, { style: { color, weight: sel ? 3 : 2, fillColor: color,
                                                     fillOpacity: 0.35 } });
      shape.on("click", () => select(c.clue_id));
      shape.bindTooltip(clueTitle(c), { sticky: true });
      shape.addTo(state.shapes);
      shape.eachLayer((l) => l.getElement && l.getElement()
        && l.getElement().setAttribute("data-clue-id", c.clue_id));
    }
    const pt = cluePoint(c);
    if (!pt) continue;
    const icon = L.divIcon({ className: "clue-icon",
      html: `<span class="pin sev-${c.severity}${sel}" data-clue-id="${encodeURIComponent(c.clue_id)}"></span>`,
      iconSize: [18, 18], iconAnchor: [9, 9] });
    const m = L.marker(pt, { icon, severity: c.severity, title: clueTitle(c), keyboard: false });
    m.on("click", () => select(c.clue_id));
    markers.push(m);
    state.markers.set(c.clue_id, m);
  }
  state.cluster.addLayers(markers);
}

// which clues a person can see on the map now: a pin of their own or inside a cluster
window.offsiteMapClues = () => {
  const out = [];
  for (const [id, m] of state.markers) {
    const parent = state.cluster.getVisibleParent(m);
    if (parent && state.map.getBounds().contains(parent.getLatLng())) out.push(id);
  }
  return out;
};

// ---- selected clue ---------------------------------------------------------------------

function select(id) {
  state.selected = id;
  renderClues();
  const m = state.markers.get(id);
  // bring it into view without zooming in (two clues 50 m apart would zoom to a street
  // with nothing drawn around it); a click on its cluster opens the cluster
  if (m && !state.map.getBounds().pad(-0.1).contains(m.getLatLng())) state.map.panTo(m.getLatLng());
  showDetail(id, true);
}

function row(k, v) { return v === null || v === undefined || v === "" ? null
  : el("tr", {}, el("th", { text: t(k) }), el("td", { text: String(v) })); }

async function showDetail(id, full) {
  let c;
  try { c = await api(`/clues/${encodeURIComponent(id)}?lang=${Offsite.lang}`); } catch (e) {
    $("detail").textContent = String(e.message || e);
    return;
  }
  if (state.selected !== id) return;
  $("detail").className = "";
  delete $("detail").dataset.i18n;
  const metrics = Object.entries(c.metrics || {}).filter(([, v]) => typeof v !== "object")
    .map(([k, v]) => `${k}=${typeof v === "number" ? +v.toPrecision(4) : v}`).join(", ");
  $("detail").replaceChildren(
    el("h3", { class: `detail-title sev-${c.severity}`, text: clueTitle(c) }),
    el("table", {},
      row("field.severity", label("severity", c.severity)), row("field.kind", label("kind", c.kind)),
      row("field.state", label("state", c.state)), row("field.modality", label("modality", c.modality)),
      row("field.subject", c.resource_name ? `${c.resource_name} (${c.subject})` : c.subject),
      row("field.department", c.department_name || c.department), row("field.zones", zoneNames(c)),
      row("field.start", fmtTime(c.start)), row("field.time", fmtTime(c.time)),
      row("field.confidence", Number(c.confidence).toFixed(2)), row("field.rule", c.rule),
      row("field.summary", c.summary), row("field.metrics", metrics), row("field.clue", c.clue_id)));
  if (full) {
    showEvidence(c);
    showChart(c).catch((e) => { $("chart-note").textContent = String(e.message || e); });
  }
  return c;
}

function clearBlobs() {
  for (const u of state.blobUrls) URL.revokeObjectURL(u);
  state.blobUrls = [];
}

async function showEvidence(c) {
  clearBlobs();
  const box = $("evidence");
  const head = el("h3", { "data-i18n": "center.evidence", text: t("center.evidence") });
  if (!c.evidence_access) {
    box.replaceChildren(head, el("p", { class: "muted", "data-i18n": "center.no_evidence_access",
                                        text: t("center.no_evidence_access") }));
    return;
  }
  if (!c.evidence || !c.evidence.length) {
    box.replaceChildren(head, el("p", { class: "muted", "data-i18n": "center.no_evidence",
                                        text: t("center.no_evidence") }));
    return;
  }
  const grid = el("div", { class: c.modality === "satellite" ? "ev-grid pair" : "ev-grid" });
  box.replaceChildren(head, grid);
  for (const ev of c.evidence) {
    const fig = el("figure", { "data-evidence-id": ev.id });
    const cap = el("figcaption", { text: `${ev.name} · ${ev.media_type}`, title: `sha256 ${ev.sha256}` });
    grid.append(fig);
    const media = ev.media_type.split(";")[0].trim();
    if (!["image/png", "image/jpeg", "video/mp4"].includes(media)) { fig.append(cap); continue; }
    try {
      const blob = await api(`/evidence/${encodeURIComponent(ev.id)}/content`, { blob: true });
      if (state.selected !== c.clue_id) return;
      const url = URL.createObjectURL(new Blob([blob], { type: media }));
      state.blobUrls.push(url);
      fig.prepend(media === "video/mp4"
        ? el("video", { src: url, controls: true, preload: "metadata" })
        : el("img", { src: url, alt: ev.name }));
      fig.append(cap);
    } catch (e) {
      fig.append(cap, el("p", { class: "error", text: String(e.message || e) }));
    }
  }
}

function ruleCode(rule) {
  for (const part of String(rule || "").split("/")) {
    const code = part.split("-")[0];
    if (/^[aw]\d{5}$/.test(code)) return code;
  }
  return "";
}

async function showChart(c) {
  if (state.chart) { state.chart.destroy(); state.chart = null; }
  $("chart").replaceChildren();
  $("chart-box").hidden = c.modality !== "env";
  if (c.modality !== "env") return;
  const code = ruleCode(c.rule);
  const start = new Date(c.start), stop = new Date(c.end || c.time);
  const pad = Math.max(6 * 3600e3, (stop - start) / 2);
  const q = new URLSearchParams({ station: c.resource_id, limit: "5000",
    since: new Date(start - pad).toISOString(), until: new Date(+stop + pad).toISOString() });
  if (code) q.set("code", code);
  let rows;
  try { rows = await api("/api/readings?" + q); } catch (e) {
    if (e instanceof Offsite.HttpError && e.status === 404) {
      $("chart-note").textContent = t("center.readings.no_access");
      return;
    }
    throw e;
  }
  if (state.selected !== c.clue_id) return;
  const pts = rows.filter((r) => !code || r.code === code).reverse();
  const limit = typeof c.metrics?.limit === "number" ? c.metrics.limit : null;
  const notes = [t("center.readings.no_band")];
  if (limit !== null) notes.unshift(t("center.readings.limit", { limit, unit: c.metrics.unit || "" }));
  $("chart-note").textContent = notes.join(" · ");
  if (!pts.length) { $("chart-note").textContent = t("center.readings.none"); return; }
  const xs = pts.map((r) => new Date(r.time).getTime() / 1000);
  const data = [xs, pts.map((r) => r.value)];
  const name = (c.title_args && c.title_args.pollutant) || code || t("center.readings");
  const series = [{ label: t("field.time") }, { label: name, stroke: "#1f77b4", width: 1.5,
                        points: { show: pts.length < 80 } }];
  if (limit !== null) {
    data.push(xs.map(() => limit));
    series.push({ label: t("center.readings.limit", { limit, unit: "" }), stroke: "#c62828",
                  dash: [6, 4], width: 1.5, points: { show: false } });
  }
  const width = Math.max(260, $("chart").clientWidth || 320);
  state.chart = new uPlot({ width, height: 180, series, scales: { x: { time: true } },
    axes: [{ size: 30 }, { size: 40 }],
    hooks: { draw: [(u) => {  // the clue's episode, shaded
      const x0 = u.valToPos(start / 1000, "x", true), x1 = u.valToPos(stop / 1000, "x", true);
      u.ctx.save(); u.ctx.fillStyle = "rgba(198,40,40,0.08)";
      u.ctx.fillRect(x0, u.bbox.top, Math.max(2, x1 - x0), u.bbox.height); u.ctx.restore();
    }] } }, data, $("chart"));
}

// ---- health ----------------------------------------------------------------------------

async function loadHealth() {
  const [cams, stations] = await Promise.all([api("/health/cameras"), api("/health/stations")]);
  const camState = (c) => (c.online === true ? "online" : c.online === false ? "down" : "unknown");
  const block = (titleKey, items, stateOf, nameOf, detailOf) => {
    const counts = {};
    for (const i of items) counts[stateOf(i)] = (counts[stateOf(i)] || 0) + 1;
    return [
      el("h3", { text: t(titleKey) }),
      el("div", { class: "count-row" }, ...Object.entries(counts).sort().map(([s, n]) =>
        el("span", { class: `chip h-${s}`, text: t("center.health.counts", { state: label("health", s), n }) }))),
      el("table", {}, ...items.map((i) => el("tr", {},
        el("td", { text: nameOf(i) }),
        el("td", { class: stateOf(i), text: label("health", stateOf(i)) }),
        el("td", { class: "muted", text: detailOf(i) })))),
    ];
  };
  $("health").replaceChildren(
    ...block("center.health.cameras", cams, camState,
      (c) => (c.name ? `${c.name} (${c.camera})` : c.camera),
      (c) => (c.time ? fmtTime(c.time) + (c.fps ? ` · ${(+c.fps).toFixed(1)} fps` : "") : "")),
    ...block("center.health.stations", stations, (s) => s.status || "unknown",
      (s) => (s.name ? `${s.name} (${s.station})` : s.station), (s) => fmtTime(s.last_time)));
}

// ---- start -----------------------------------------------------------------------------

const login = Offsite.setupLogin(async (me) => {
  state.me = me;
  if (!state.map) initMap();
  await Promise.all([loadZones(), loadClues()]);
  fitClues();
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

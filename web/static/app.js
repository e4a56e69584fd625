// Offsite monitoring center: plain JavaScript, no build step, nothing from the internet.
// The bearer token comes from ?token= or localStorage; API calls send it as a header, the
// live stream (EventSource cannot send headers) as the access_token query parameter.
"use strict";

const TOKEN_KEY = "offsite.token";
const SVG_NS = "http://www.w3.org/2000/svg";
const MAP_W = 800, MAP_H = 600, PAD = 20;
const state = {
  token: null, clues: new Map(), streamed: new Map(), zones: [], selected: null, source: null,
  blobUrls: [], project: null, healthTimer: null,
};
const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

function svg(tag, attrs = {}) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

// ---- token and API -------------------------------------------------------------------

function initToken() {
  const params = new URLSearchParams(location.search);
  const fromUrl = params.get("token");
  if (fromUrl) {
    localStorage.setItem(TOKEN_KEY, fromUrl);
    params.delete("token");  // keep the token out of the address bar and history
    const rest = params.toString();
    history.replaceState(null, "", location.pathname + (rest ? "?" + rest : "") + location.hash);
  }
  state.token = localStorage.getItem(TOKEN_KEY);
}

class AuthError extends Error {}

async function api(path, asBlob = false) {
  const resp = await fetch(path, { headers: { Authorization: "Bearer " + state.token } });
  if (resp.status === 401) throw new AuthError("token rejected");
  if (!resp.ok) throw new Error(`${path}: HTTP ${resp.status}`);
  return asBlob ? resp.blob() : resp.json();
}

function showLogin(message) {
  if (state.source) { state.source.close(); state.source = null; }
  clearInterval(state.healthTimer);
  $("app").hidden = true;
  $("logout").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message || "";
  setConn(false);
}

function setConn(on) {
  const c = $("conn");
  c.className = "conn " + (on ? "on" : "off");
  c.textContent = on ? "live" : "offline";
}

// ---- clues ---------------------------------------------------------------------------

function filters() {
  return { kind: $("f-kind").value.trim(), status: $("f-status").value,
           modality: $("f-modality").value };
}

function matches(c) {
  const f = filters();
  return (!f.kind || c.kind === f.kind) && (!f.status || c.state === f.status)
    && (!f.modality || c.modality === f.modality);
}

async function loadClues() {
  const q = new URLSearchParams({ limit: "200" });
  for (const [k, v] of Object.entries(filters())) if (v) q.set(k, v);
  const body = await api("/clues?" + q);
  state.clues = new Map();
  // the list is newest first; keep the map in arrival order (oldest first)
  for (const c of body.items.slice().reverse()) state.clues.set(c.clue_id, c);
  // changes the stream brought while the list was loading stay
  for (const c of state.streamed.values()) {
    const have = state.clues.get(c.clue_id);
    if (!have || (have.event_seq ?? 0) < (c.event_seq ?? 0)) {
      state.clues.delete(c.clue_id);
      state.clues.set(c.clue_id, c);
    }
  }
  state.streamed.clear();
  renderClues();
}

function upsertClue(c, fresh) {
  state.streamed.set(c.clue_id, c);
  state.clues.delete(c.clue_id);  // re-insert so that it moves to the top
  state.clues.set(c.clue_id, c);
  renderClues(fresh ? c.clue_id : null);
  if (state.selected === c.clue_id) showDetail(c.clue_id, false);
}

function fmtTime(t) {
  if (!t) return "";
  const d = new Date(t);
  return isNaN(d) ? String(t) : d.toLocaleString();
}

function renderClues(freshId) {
  const list = $("clue-list");
  const shown = [...state.clues.values()].filter(matches).reverse();
  list.replaceChildren(...shown.map((c) => {
    const li = el("li", { class: `m-${c.modality}`, "data-clue-id": c.clue_id },
      el("div", {},
        el("span", { class: "id", text: c.clue_id }), " ",
        el("span", { class: `state ${c.state}`, text: c.state })),
      el("div", { text: `${c.kind} · ${c.modality} · ${c.subject}` }),
      el("div", { class: "meta",
                  text: `${fmtTime(c.time)} · conf ${Number(c.confidence).toFixed(2)}`
                        + (c.department ? ` · ${c.department}` : "") }));
    if (c.summary) li.title = c.summary;
    if (c.clue_id === state.selected) li.classList.add("selected");
    if (c.clue_id === freshId) li.classList.add("new");
    li.addEventListener("click", () => select(c.clue_id));
    return li;
  }));
  $("clue-count").textContent = `(${shown.length})`;
  const kinds = new Set([...state.clues.values()].map((c) => c.kind));
  $("kinds").replaceChildren(...[...kinds].sort().map((k) => el("option", { value: k })));
  drawClues();
}

function openStream() {
  if (state.source) state.source.close();
  const src = new EventSource("/clues/stream?access_token=" + encodeURIComponent(state.token));
  src.onopen = () => setConn(true);
  src.onerror = () => {
    setConn(false);
    // a closed stream after a 401 is not retried by the browser: check the token
    if (src.readyState === EventSource.CLOSED) {
      api("/me").then(openStream, (e) => {
        if (e instanceof AuthError) showLogin("token rejected");
        else setTimeout(openStream, 3000);
      });
    }
  };
  src.addEventListener("clue", (ev) => {
    try { upsertClue(JSON.parse(ev.data), true); } catch (e) { console.error(e); }
  });
  state.source = src;
}

// ---- map -----------------------------------------------------------------------------

function eachCoord(geom, fn) {
  if (!geom) return;
  const walk = (c) => (typeof c[0] === "number" ? fn(c[0], c[1]) : c.forEach(walk));
  if (geom.type === "GeometryCollection") geom.geometries.forEach((g) => eachCoord(g, fn));
  else if (geom.coordinates) walk(geom.coordinates);
}

function bboxOf(features) {
  const b = [Infinity, Infinity, -Infinity, -Infinity];
  for (const f of features) eachCoord(f.geometry, (x, y) => {
    b[0] = Math.min(b[0], x); b[1] = Math.min(b[1], y);
    b[2] = Math.max(b[2], x); b[3] = Math.max(b[3], y);
  });
  return b[0] <= b[2] ? b : [-180, -90, 180, 90];
}

// Equirectangular, x scaled by cos(mid latitude), fitted into the SVG with a margin.
function makeProjection([minx, miny, maxx, maxy]) {
  const k = Math.cos(((miny + maxy) / 2) * Math.PI / 180);
  const w = Math.max((maxx - minx) * k, 1e-6), h = Math.max(maxy - miny, 1e-6);
  const s = Math.min((MAP_W - 2 * PAD) / w, (MAP_H - 2 * PAD) / h);
  const ox = (MAP_W - w * s) / 2, oy = (MAP_H - h * s) / 2;
  return (lon, lat) => [ox + (lon - minx) * k * s, oy + (maxy - lat) * s];
}

function ringPath(ring, p) {
  return ring.map(([x, y], i) => {
    const [px, py] = p(x, y);
    return `${i ? "L" : "M"}${px.toFixed(1)},${py.toFixed(1)}`;
  }).join("") + "Z";
}

function geomPath(g, p) {
  if (g.type === "Polygon") return g.coordinates.map((r) => ringPath(r, p)).join("");
  if (g.type === "MultiPolygon") return g.coordinates.map((poly) => geomPath(
    { type: "Polygon", coordinates: poly }, p)).join("");
  return "";
}

function drawZones() {
  const region = $("map-region").value;
  const fit = region ? state.zones.filter((f) => f.properties.id === region) : state.zones;
  state.project = makeProjection(bboxOf(fit));
  const layer = $("zones-layer");
  // jurisdictions underneath, small zones on top
  const order = [...state.zones].sort((a, b) =>
    (a.properties.kind === "jurisdiction" ? 0 : 1) - (b.properties.kind === "jurisdiction" ? 0 : 1));
  layer.replaceChildren(...order.map((f) => {
    const path = svg("path", { d: geomPath(f.geometry, state.project),
                               class: `zone z-${f.properties.kind}`,
                               "data-zone-id": f.properties.id });
    const t = svg("title");
    t.textContent = `${f.properties.name} (${f.properties.kind}, ${f.properties.owner_dept})`;
    path.append(t);
    return path;
  }));
  drawClues();
}

function cluePoint(c) {
  const loc = c.location;
  if (!loc) return null;
  if (loc.type === "Point") return loc.coordinates;
  let n = 0, sx = 0, sy = 0;
  eachCoord(loc, (x, y) => { n++; sx += x; sy += y; });
  return n ? [sx / n, sy / n] : null;
}

function drawClues() {
  if (!state.project) return;
  const layer = $("clues-layer");
  const dots = [];
  for (const c of state.clues.values()) {
    if (!matches(c)) continue;
    const pt = cluePoint(c);
    if (!pt) continue;
    const [x, y] = state.project(pt[0], pt[1]);
    if (x < -50 || y < -50 || x > MAP_W + 50 || y > MAP_H + 50) continue;
    const dot = svg("circle", { cx: x.toFixed(1), cy: y.toFixed(1), r: 6,
                                class: `clue m-${c.modality}` +
                                       (c.clue_id === state.selected ? " selected" : ""),
                                "data-clue-id": c.clue_id });
    const t = svg("title");
    t.textContent = `${c.clue_id}: ${c.kind} (${c.state})`;
    dot.append(t);
    dot.addEventListener("click", () => select(c.clue_id));
    dots.push(dot);
  }
  layer.replaceChildren(...dots);
}

async function loadZones() {
  const fc = await api("/zones");
  state.zones = fc.features;
  const regions = state.zones.filter((f) => f.properties.kind === "jurisdiction"
                                            && !f.properties.parent);
  $("map-region").replaceChildren(el("option", { value: "", text: "all zones" }),
    ...regions.map((f) => el("option", { value: f.properties.id, text: f.properties.name })));
  if (regions.length) $("map-region").value = regions[0].properties.id;
  const kinds = [...new Set(state.zones.map((f) => f.properties.kind))].sort();
  $("legend").replaceChildren(...kinds.map((k) => {
    const swatch = el("i");
    const probe = svg("path", { class: `zone z-${k}` });
    $("map").append(probe);
    const st = getComputedStyle(probe);
    swatch.style.background = st.fill === "none" ? "transparent" : st.fill;
    swatch.style.borderColor = st.stroke;
    probe.remove();
    return el("span", {}, swatch, k.replace(/_/g, " "));
  }));
  drawZones();
}

// ---- selected clue and evidence ------------------------------------------------------

function select(id) {
  state.selected = id;
  renderClues();
  showDetail(id, true);
}

function row(k, v) { return el("tr", {}, el("th", { text: k }), el("td", { text: v ?? "" })); }

async function showDetail(id, withEvidence) {
  let c;
  try { c = await api("/clues/" + encodeURIComponent(id)); } catch (e) {
    $("detail").textContent = String(e.message || e);
    return;
  }
  if (state.selected !== id) return;
  $("detail").className = "";
  $("detail").replaceChildren(el("table", {},
    row("clue", c.clue_id), row("kind", c.kind), row("state", c.state),
    row("modality", c.modality), row("subject", c.subject), row("rule", c.rule),
    row("time", fmtTime(c.time)), row("confidence", Number(c.confidence).toFixed(2)),
    row("site", c.site), row("department", c.department), row("summary", c.summary),
    row("metrics", JSON.stringify(c.metrics))));
  if (withEvidence) showEvidence(c);
}

function clearBlobs() {
  for (const u of state.blobUrls) URL.revokeObjectURL(u);
  state.blobUrls = [];
}

async function showEvidence(c) {
  clearBlobs();
  const box = $("evidence");
  if (!c.evidence_access) {
    box.replaceChildren(el("p", { class: "muted", text: "No access to this clue's evidence." }));
    return;
  }
  if (!c.evidence || !c.evidence.length) {
    box.replaceChildren(el("p", { class: "muted", text: "No evidence." }));
    return;
  }
  box.replaceChildren();
  for (const ev of c.evidence) {
    const fig = el("figure", { "data-evidence-id": ev.id });
    const cap = el("figcaption", { text: `${ev.name} · ${ev.media_type} · sha256 ${ev.sha256}` });
    box.append(fig);
    const media = ev.media_type.split(";")[0].trim();
    if (!["image/png", "image/jpeg", "video/mp4"].includes(media)) {
      fig.append(cap);
      continue;
    }
    try {
      const blob = await api(`/evidence/${encodeURIComponent(ev.id)}/content`, true);
      if (state.selected !== c.clue_id) return;
      const url = URL.createObjectURL(new Blob([blob], { type: media }));
      state.blobUrls.push(url);
      const node = media === "video/mp4"
        ? el("video", { src: url, controls: "", preload: "metadata" })
        : el("img", { src: url, alt: ev.name });
      fig.append(node, cap);
    } catch (e) {
      fig.append(cap, el("p", { class: "error", text: String(e.message || e) }));
    }
  }
}

// ---- health --------------------------------------------------------------------------

function table(head, rows) {
  return el("table", {}, el("tr", {}, ...head.map((h) => el("th", { text: h }))), ...rows);
}

async function loadHealth() {
  try {
    const [cams, stations] = await Promise.all([api("/health/cameras"),
                                                api("/health/stations")]);
    const camRows = cams.map((c) => {
      const s = c.online == null ? "unknown" : c.online ? "ok" : "down";
      return el("tr", {}, el("td", { text: c.camera }), el("td", { class: s, text: s }),
        el("td", { text: c.fps == null ? "" : Number(c.fps).toFixed(1) }),
        el("td", { text: fmtTime(c.time) }));
    });
    const stRows = stations.map((s) => el("tr", {}, el("td", { text: s.station }),
      el("td", { class: s.status, text: s.status }), el("td", { text: fmtTime(s.last_time) })));
    $("health").replaceChildren(
      el("h3", { text: `Cameras (${cams.length})` }),
      table(["camera", "status", "fps", "last report"], camRows),
      el("h3", { text: `Stations (${stations.length})` }),
      table(["station", "status", "last reading"], stRows));
  } catch (e) {
    if (e instanceof AuthError) return showLogin("token rejected");
    $("health").replaceChildren(el("p", { class: "error", text: String(e.message || e) }));
  }
}

// ---- start ---------------------------------------------------------------------------

async function start() {
  let me;
  try { me = await api("/me"); } catch (e) {
    return showLogin(e instanceof AuthError ? "token rejected" : String(e.message || e));
  }
  $("login").hidden = true;
  $("app").hidden = false;
  $("logout").hidden = false;
  $("who").textContent = `${me.id} · ${me.department} · ${me.role}`;
  openStream();  // first, so that nothing inserted while the list loads is missed
  await Promise.all([loadZones().catch((e) => console.error(e)), loadClues(), loadHealth()]);
  clearInterval(state.healthTimer);
  state.healthTimer = setInterval(loadHealth, 30000);
  document.body.dataset.ready = "1";
}

$("login-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  state.token = $("token-input").value.trim();
  localStorage.setItem(TOKEN_KEY, state.token);
  start();
});
$("logout").addEventListener("click", () => {
  localStorage.removeItem(TOKEN_KEY);
  state.token = null;
  showLogin("");
});
for (const id of ["f-kind", "f-status", "f-modality"]) {
  $(id).addEventListener("change", () => loadClues().catch((e) => console.error(e)));
}
$("map-region").addEventListener("change", drawZones);

initToken();
if (state.token) start(); else showLogin("");

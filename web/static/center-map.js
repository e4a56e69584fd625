// Monitoring center, the map: Leaflet with the registry's zones as the base (or the
// configured tiles), clues as markers clustered and coloured by severity, change polygons as
// shapes, fire events (FIRMS hotspots of straw_burning / open_fire clues) as a layer of their
// own. Loaded before app.js, which declares the shared `state` and helpers it uses.
"use strict";

const SEV_COLOR = { high: "#c62828", medium: "#ef8a00", low: "#1f77b4" };
const FIRE_KINDS = { straw_burning: "#ff6f00", open_fire: "#d50000" };
const ZONE_STYLE = {
  jurisdiction: { color: "#6d7f8c", weight: 1.2, dashArray: "4 3", fillColor: "#f4f1e8", fillOpacity: 0.9 },
  protected_farmland: { color: "#a8921e", fillColor: "#e8d36a" },
  ecological_redline: { color: "#b33", fillColor: "#e88a8a" },
  water_source: { color: "#2a6fb0", fillColor: "#7fb8e8" },
  forest: { color: "#2e7d32", fillColor: "#7cc47c" },
  enterprise_site: { color: "#5e35b1", fillColor: "#b39ddb" },
  restricted_area: { color: "#d35400", fillColor: "#ffab66" },
};

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
  // fire events: each hotspot of a fire clue, sized by its FRP, on a layer one can switch off
  state.fires = L.layerGroup().addTo(map);
  const fireName = `<span data-i18n="center.map.fires">${t("center.map.fires")}</span>`;
  L.control.layers(null, { [fireName]: state.fires }, { collapsed: false }).addTo(map);
  map.setView([32.45, 119.95], 10);
}

function drawFire(c) {
  const color = FIRE_KINDS[c.kind];
  const points = (c.metrics && Array.isArray(c.metrics.points)) ? c.metrics.points : [];
  for (const [lon, lat, frp] of points) {
    const dot = L.circleMarker([lat, lon], { radius: 4 + Math.min(8, Math.sqrt(frp || 0)),
      color, weight: c.clue_id === state.selected ? 3 : 1.5, fillColor: color, fillOpacity: 0.6,
      className: `fire-dot fire-${c.kind}` });
    dot.bindTooltip(`${clueTitle(c)} · FRP ${frp} MW`, { sticky: true });
    dot.on("click", () => select(c.clue_id));
    dot.addTo(state.fires);
    if (dot.getElement()) dot.getElement().setAttribute("data-clue-id", c.clue_id);
  }
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
    ...Object.entries(FIRE_KINDS).map(([k, color]) => el("span", {},
      el("i", { class: "dot", style: `background:${color}` }), label("kind", k))),
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
  state.fires.clearLayers();
  state.markers = new Map();
  const markers = [];
  for (const id of state.order) {
    const c = state.clues.get(id);
    if (!c || !matches(c) || !c.location) continue;
    if (FIRE_KINDS[c.kind]) drawFire(c);
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

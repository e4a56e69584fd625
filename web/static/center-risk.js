// Monitoring center, the risk layer: every regulated entity the operator may see, drawn at
// its enterprise-site zones (or its stations and cameras) and coloured by risk level, from
// GET /risk. A popup gives the score, the credit class and the largest contributions, each
// opening its clue in the detail panel. The layer is toggled by #risk-toggle and refreshed
// every minute while shown. Loaded before app.js, which declares `state` and calls loadRisk.
"use strict";

const RISK_COLOR = { high: "#b71c1c", medium: "#f57c00", low: "#2e7d32" };
const RISK_REFRESH_MS = 60000;
const risk = { layer: null, items: [], timer: null };

function riskLayer() {
  if (!risk.layer) {
    state.map.createPane("risk").style.zIndex = 380;  // over the zones, under the clues
    risk.layer = L.layerGroup();
    if ($("risk-toggle").checked) risk.layer.addTo(state.map);
    $("risk-toggle").addEventListener("change", toggleRisk);
  }
  return risk.layer;
}

async function loadRisk() {
  const layer = riskLayer();
  const items = [];
  let after = null;
  do {  // every entity the caller may see, a page at a time
    const q = new URLSearchParams({ limit: "1000", sort: "score" });
    if (after) q.set("after", after);
    const body = await api("/risk?" + q);
    items.push(...body.items);
    after = body.next_cursor;
  } while (after);
  risk.items = items;
  layer.clearLayers();
  for (const item of items) if (item.location) drawEntity(layer, item);
  renderRiskLegend();
  clearInterval(risk.timer);
  risk.timer = setInterval(() => {
    if ($("risk-toggle").checked) loadRisk().catch(Offsite.report);
  }, RISK_REFRESH_MS);
}

function drawEntity(layer, item) {
  const color = RISK_COLOR[item.level] || RISK_COLOR.low;
  const cls = `risk-area risk-${item.level}`;
  const shape = L.geoJSON(item.location, {
    pane: "risk",
    style: { color, weight: 3, fillColor: color, fillOpacity: 0.3, className: cls },
    pointToLayer: (_, latlng) => L.circleMarker(latlng, {
      pane: "risk", radius: 9, color, weight: 3, fillColor: color, fillOpacity: 0.5,
      className: cls }),
  });
  shape.bindTooltip(() => `${item.name} · ${t("risk.score")} ${item.score.toFixed(1)}`,
                    { sticky: true });
  shape.bindPopup(() => riskPopup(item), { maxWidth: 360 });
  tagPaths(shape, item.entity);
  shape.addTo(layer);
}

// data-entity on every drawn path (a GeometryCollection is a group of groups)
function tagPaths(layer, entity) {
  if (layer.eachLayer) layer.eachLayer((l) => tagPaths(l, entity));
  else layer.on("add", () => layer.getElement().setAttribute("data-entity", entity));
}

function riskPopup(item) {
  const list = el("ol", { class: "risk-contrib" }, ...item.contributions.map((c) => el("li", {},
    el("a", { href: "#", "data-clue-id": c.clue_id, text: label("kind", c.kind),
              onclick: (ev) => { ev.preventDefault(); state.map.closePopup(); select(c.clue_id); } }),
    ` ${fmtTime(c.time)} · +${c.points.toFixed(2)}`,
    c.result ? ` · ${label("risk.result", c.result)}` : "")));
  return el("div", { class: "risk-popup", "data-entity": item.entity },
    el("h4", { text: item.name }),
    el("p", {}, el("b", { class: `risk-level risk-${item.level}`,
                          text: label("risk.level", item.level) }),
      ` ${t("risk.score")} ${item.score.toFixed(2)} · ${t("risk.credit")} ${item.credit_class || "-"}`),
    el("p", { class: "muted", text: t("risk.clues", { n: item.clues }) }),
    item.contributions.length ? el("div", {}, el("b", { text: t("risk.contributions") }), list)
      : el("p", { class: "muted", text: t("risk.none") }));
}

function renderRiskLegend() {
  let box = $("risk-legend");
  if (!box) {
    box = el("div", { id: "risk-legend" });
    $("legend").after(box);
  }
  box.hidden = !$("risk-toggle").checked;
  box.replaceChildren(el("b", { text: t("risk.layer") }),
    ...["high", "medium", "low"].map((lvl) => el("span", {},
      el("i", { style: `border-color:${RISK_COLOR[lvl]};background:${RISK_COLOR[lvl]}55` }),
      `${label("risk.level", lvl)} ${risk.items.filter((i) => i.level === lvl).length}`)));
}

function toggleRisk() {
  if (!risk.layer) return;
  if ($("risk-toggle").checked) {
    risk.layer.addTo(state.map);
    loadRisk().catch(Offsite.report);
  } else {
    state.map.removeLayer(risk.layer);
    renderRiskLegend();
  }
}

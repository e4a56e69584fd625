// Monitoring center, the selected clue (facts, evidence, the readings chart of an env clue)
// and station / camera health. Loaded before app.js, which declares `state` and the helpers.
"use strict";

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

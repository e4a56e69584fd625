// Department desk (/ui/desk): the resource directory (search, access state, request access),
// the owner's side (pending requests to approve or deny, live grants to revoke, the audit log
// of its resources) and the department's work statistics (/stats) with a weekly chart.
"use strict";

const { $, el, t, label, api, fmtTime, fmtDuration } = Offsite;
const PAGE = 50;
const WEEKS = 8;
const state = { me: null, cursor: null, resources: [], chart: null, timer: null };

// ---- directory ---------------------------------------------------------------------------

async function loadResources(more = false) {
  if (!more) { state.cursor = null; state.resources = []; }
  const q = new URLSearchParams({ limit: String(PAGE) });
  if ($("q").value.trim()) q.set("q", $("q").value.trim());
  if ($("kind").value) q.set("kind", $("kind").value);
  if (state.cursor) q.set("cursor", state.cursor);
  const page = await api("/resources?" + q);
  state.resources.push(...page.items);
  state.cursor = page.next_cursor;
  $("more").hidden = !state.cursor;
  renderResources();
}

function accessText(r) {
  return r.access === "granted" ? t("desk.access.granted", { until: fmtTime(r.granted_until) })
    : t(`desk.access.${r.access}`);
}

function renderResources() {
  $("resources").tBodies[0].replaceChildren(...state.resources.map((r) => {
    const tr = el("tr", { "data-resource": `${r.kind}/${r.id}` },
      el("td", {}, el("span", { class: "chip", text: label("desk.kind", r.kind) }), " ", r.id),
      el("td", { text: r.name }),
      el("td", { text: r.owner_dept || "" }),
      el("td", { class: `access acc-${r.access}`, text: accessText(r) }),
      el("td", {}, r.access === "none" && r.owner_dept && r.owner_dept !== state.me.department
        ? el("button", { type: "button", class: "act alt request", text: t("desk.request"),
                         onclick: () => toggleRequest(tr, r) }) : null));
    return tr;
  }));
}

function toggleRequest(tr, r) {
  const next = tr.nextElementSibling;
  if (next && next.classList.contains("request-row")) { next.remove(); return; }
  const perms = ["live", "history", "evidence"].map((p) => el("label", {},
    el("input", { type: "checkbox", name: "perm", value: p, checked: p !== "evidence" }),
    " ", t(`desk.perm.${p}`)));
  const purpose = el("input", { type: "text", name: "purpose", required: true,
                                placeholder: t("desk.request.purpose") });
  const days = el("input", { type: "number", name: "days", min: "1", max: "365", value: "30" });
  const msg = el("span", { class: "msg" });
  const form = el("form", { class: "request-form" }, purpose, ...perms,
    el("label", {}, t("desk.request.days"), " ", days),
    el("button", { type: "submit", class: "act", text: t("desk.request.send") }), msg);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const permissions = [...form.querySelectorAll("input[name=perm]:checked")].map((i) => i.value);
    const until = new Date(Date.now() + Number(days.value || 30) * 86400e3);
    try {
      await api("/access-requests", { method: "POST", body: {
        resources: [{ kind: r.kind, id: r.id }], purpose: purpose.value.trim(),
        permissions, valid_until: until.toISOString() } });
      msg.className = "msg notice";
      msg.textContent = t("desk.request.sent", { owner: r.owner_dept });
      r.access = "pending";
      await loadRequests();
      setTimeout(renderResources, 800);  // let the confirmation be read, then close the form
    } catch (e) {
      msg.className = "msg error";
      msg.textContent = t("common.error", { message: e.message });
    }
  });
  tr.after(el("tr", { class: "request-row" }, el("td", { colspan: "5" }, form)));
  purpose.focus();
}

// ---- requests, grants, audit ---------------------------------------------------------------

const ownerSide = () => state.me.role === "department_user" || state.me.role === "admin";
const mineToDecide = (x) => state.me.role === "admin" || x.owner_dept === state.me.department;

function card(what, meta, ...actions) {
  return el("div", { class: "card" }, el("div", { class: "what", text: what }),
    el("div", { class: "meta", text: meta }),
    actions.length ? el("div", { class: "actions" }, ...actions) : null);
}

function action(text, cls, fn) {
  return el("button", { type: "button", class: `act ${cls}`, text, onclick: async (ev) => {
    ev.target.disabled = true;
    try { await fn(); } catch (e) { ev.target.disabled = false; alertError(e); }
    await refreshOwner();
  } });
}

function alertError(e) { $("pending").prepend(el("p", { class: "error", text: t("common.error", { message: e.message }) })); }

function perms(list) { return (list || []).map((p) => t(`desk.perm.${p}`)).join(t("list.sep")); }

async function loadRequests() {
  const reqs = await api("/access-requests");
  const pending = reqs.filter((x) => x.state === "pending" && mineToDecide(x));
  const canDecide = ownerSide();
  $("pending").replaceChildren(...(pending.length ? pending.map((x) => {
    const c = card(`${label("desk.kind", x.resource_kind)} ${x.resource_id} ← ${x.requester_dept}`,
      t("desk.request.meta", { purpose: x.purpose, permissions: perms(x.permissions),
                               until: fmtTime(x.valid_until), by: x.requested_by }),
      ...(canDecide ? [
        action(t("desk.approve"), "approve", () => api(`/access-requests/${x.id}/approve`, { method: "POST", body: {} })),
        action(t("desk.deny"), "danger deny", () => api(`/access-requests/${x.id}/deny`, { method: "POST", body: {} }))] : []));
    c.dataset.requestId = x.id;
    return c;
  }) : [el("p", { class: "muted", text: t("desk.pending.none") })]));
  const mine = reqs.filter((x) => x.requester_dept === state.me.department);
  $("mine").tBodies[0].replaceChildren(...mine.map((x) => el("tr", { "data-request-id": x.id },
    el("td", { text: `${label("desk.kind", x.resource_kind)} ${x.resource_id}` }),
    el("td", { text: x.purpose }), el("td", { text: label("req", x.state) }),
    el("td", { class: "muted", text: fmtTime(x.created_at) }))));
}

async function loadGrants() {
  const grants = (await api("/grants")).filter((g) => g.status === "live" && mineToDecide(g));
  $("grants").replaceChildren(...(grants.length ? grants.map((g) => {
    const c = card(`${label("desk.kind", g.resource_kind)} ${g.resource_id} → ${g.grantee_dept}`,
      t("desk.grant.meta", { permissions: perms(g.permissions), until: fmtTime(g.valid_until) }),
      ...(ownerSide() ? [action(t("desk.revoke"), "danger revoke",
        () => api(`/grants/${g.id}/revoke`, { method: "POST" }))] : []));
    c.dataset.grantId = g.id;
    return c;
  }) : [el("p", { class: "muted", text: t("desk.grants.none") })]));
}

async function loadAudit() {
  if (!ownerSide()) {
    $("audit").replaceChildren(el("p", { class: "muted", text: t("desk.audit.forbidden") }));
    return;
  }
  const rows = await api("/audit?limit=50");
  $("audit").replaceChildren(rows.length ? el("table", { class: "grid" },
    el("tr", {}, ...["field.time", "field.user", "field.action", "field.resource"].map((k) => el("th", { text: t(k) }))),
    ...rows.map((a) => el("tr", {}, el("td", { text: fmtTime(a.time) }),
      el("td", {}, a.user_id, el("div", { class: "muted small", text: a.department })),
      el("td", { text: a.action }),
      el("td", { text: `${label("desk.kind", a.resource_kind)} ${a.resource_id || ""}` }))))
    : el("p", { class: "muted", text: t("desk.audit.none") }));
}

async function refreshOwner() {
  await Promise.all([loadRequests(), loadGrants(), loadAudit()]);
  await loadResources().catch(Offsite.report);
}

// ---- statistics --------------------------------------------------------------------------

// enforcement coverage (GET /stats "coverage"): clues acted on in time, draws done/planned,
// high-risk entities never inspected
function coverageFigures(c, fig) {
  if (!c) return [];
  const pct = (x) => (x === null || x === undefined ? "—" : `${Math.round(x * 100)}%`);
  return [fig("stats.on_time", pct(c.clues_acted_on_time.share_on_time)),
    fig("stats.draws_done", `${c.draws.done} / ${c.draws.planned}`),
    fig("stats.never_inspected", c.high_risk_never_inspected.length)];
}

async function loadStats() {
  const now = new Date();
  const s = await api("/stats");
  const fig = (key, value) => el("div", { class: "figure" }, el("b", { text: String(value) }), el("span", { text: t(key) }));
  $("figures").replaceChildren(
    fig("stats.readings", s.readings_received), fig("stats.clues", s.clues_raised),
    fig("stats.assigned", s.tasks.assigned), fig("stats.closed", s.tasks.closed),
    fig("stats.median_accept", fmtDuration(s.median_time_to_accept_s)),
    fig("stats.median_close", fmtDuration(s.median_time_to_close_s)),
    fig("stats.overdue", s.tasks.overdue_now), fig("stats.accepted", s.tasks.accepted),
    ...coverageFigures(s.coverage, fig));
  $("fp").tBodies[0].replaceChildren(
    el("tr", {}, el("th", { text: t("field.kind") }), el("th", { text: t("stats.reports") }),
      el("th", { text: t("stats.fp_rate") })),
    ...Object.entries(s.false_positive_rate).map(([kind, v]) => el("tr", {},
      el("td", { text: label("kind", kind) }), el("td", { text: String(v.reports) }),
      el("td", { text: `${Math.round(v.rate * 100)}%` }))));
  // one /stats call per week: the same figures, counted the same way, over time
  const weeks = [...Array(WEEKS).keys()].reverse().map((i) => {
    const until = new Date(now - i * 7 * 86400e3);
    return [new Date(until - 7 * 86400e3), until];
  });
  const per = await Promise.all(weeks.map(([a, b]) =>
    api(`/stats?since=${encodeURIComponent(a.toISOString())}&until=${encodeURIComponent(b.toISOString())}`)));
  drawChart(weeks.map(([a]) => a.getTime() / 1000), per.map((x) => x.clues_raised),
            per.map((x) => x.tasks.closed));
}

function drawChart(xs, clues, closed) {
  if (state.chart) state.chart.destroy();
  const width = Math.max(260, $("stats-chart").clientWidth || 300);
  state.chart = new uPlot({ width, height: 200, scales: { x: { time: true } },
    series: [{ label: t("field.time") },
      { label: t("stats.clues"), stroke: "#c62828", width: 2, fill: "rgba(198,40,40,0.08)" },
      { label: t("stats.closed"), stroke: "#2e7d32", width: 2 }],
    axes: [{ size: 30 }, { size: 36 }] }, [xs, clues, closed], $("stats-chart"));
}

// ---- start -------------------------------------------------------------------------------

async function loadAll() {
  await Promise.all([loadResources(), loadRequests(), loadGrants(), loadAudit(), loadStats()]);
}

const login = Offsite.setupLogin(async (me) => {
  state.me = me;
  await loadAll();
  clearInterval(state.timer);  // decisions made elsewhere show up without a reload
  state.timer = setInterval(() => Promise.all([loadRequests(), loadGrants(), loadAudit()])
    .catch(Offsite.report), 10000);
});

let searchTimer = null;
$("q").addEventListener("input", () => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => loadResources().catch(Offsite.report), 250);
});
$("kind").addEventListener("change", () => loadResources().catch(Offsite.report));
$("search").addEventListener("submit", (ev) => { ev.preventDefault(); loadResources().catch(Offsite.report); });
$("more").addEventListener("click", () => loadResources(true).catch(Offsite.report));
Offsite.onLang(() => { if (state.me) loadAll().catch(Offsite.report); });

(async () => {
  await Offsite.initLang();
  if (Offsite.initToken()) await login.run(); else login.showLogin("");
})();

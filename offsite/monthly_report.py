"""The monthly enforcement report of a department: ``report.csv`` and ``report.html``.

The figures are those of ``GET /stats`` for the month (work statistics and enforcement
coverage, counted in ``storage.tasks.stats`` and ``oversight.coverage``), so the report and
the API never disagree. ``report.csv`` has one figure per row (``section,item,value`` and
the label in Chinese and English); ``report.html`` is one static file that opens from disk:
tables and matplotlib charts embedded as PNG data URIs, Chinese first, English second.
"""

from __future__ import annotations

import base64
import csv
import html
import io
from pathlib import Path
from typing import Any

LABELS = {
    ("work", "readings_received"): ("接收监测数据条数", "readings received"),
    ("work", "clues_raised"): ("产生线索数", "clues raised"),
    ("work", "tasks_assigned"): ("派发任务数", "tasks assigned"),
    ("work", "tasks_accepted"): ("接收任务数", "tasks accepted"),
    ("work", "tasks_closed"): ("办结任务数", "tasks closed"),
    ("work", "median_time_to_accept_s"): ("接收用时中位数（秒）", "median time to accept (s)"),
    ("work", "median_time_to_close_s"): ("办结用时中位数（秒）", "median time to close (s)"),
    ("timeliness", "tasks"): ("本月线索任务", "clue tasks of the month"),
    ("timeliness", "on_time"): ("按时处置", "acted on in time"),
    ("timeliness", "late"): ("超时处置", "acted on late"),
    ("timeliness", "overdue"): ("逾期未处置", "overdue, not acted on"),
    ("timeliness", "pending"): ("未到期待处置", "pending, not yet due"),
    ("timeliness", "share_on_time"): ("按时处置率", "share acted on in time"),
    ("draws", "planned"): ("计划随机抽查", "random inspections planned"),
    ("draws", "done"): ("已完成抽查", "random inspections done"),
    ("draws", "open"): ("未完成抽查", "random inspections open"),
    ("draws", "share_done"): ("抽查完成率", "share of draws done"),
}


def rows(figures: dict[str, Any]) -> list[tuple[str, str, Any, str, str]]:
    """The report's figures as (section, item, value, label_zh, label_en)."""
    cov = figures["coverage"]
    work = {"readings_received": figures["readings_received"],
            "clues_raised": figures["clues_raised"],
            **{f"tasks_{k}": figures["tasks"][k] for k in ("assigned", "accepted", "closed")},
            "median_time_to_accept_s": figures["median_time_to_accept_s"],
            "median_time_to_close_s": figures["median_time_to_close_s"]}
    out: list[tuple[str, str, Any, str, str]] = []
    for section, values in (("work", work), ("timeliness", cov["clues_acted_on_time"]),
                            ("draws", cov["draws"])):
        for item, value in values.items():
            zh, en = LABELS[(section, item)]
            out.append((section, item, value, zh, en))
    for kind, r in cov["confirmed_rate"].items():
        out.append(("confirmed_rate", f"{kind}.reports", r["reports"], f"{kind} 核查反馈数",
                    f"{kind} reports"))
        out.append(("confirmed_rate", f"{kind}.confirmed", r["confirmed"], f"{kind} 属实数",
                    f"{kind} confirmed"))
        out.append(("confirmed_rate", f"{kind}.rate", r["rate"], f"{kind} 属实率",
                    f"{kind} confirmed rate"))
    for e in cov["high_risk_never_inspected"]:
        out.append(("high_risk_never_inspected", e["entity"], e["score"],
                    f"高风险从未检查：{e['name']}", f"high risk, never inspected: {e['name']}"))
    return out


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _cjk_fonts() -> None:
    """Make the system's CJK fonts known to matplotlib even where its font cache was built
    before they were installed (fonts-noto-cjk), so the chart labels show Chinese."""
    from matplotlib import font_manager

    if any("CJK" in f.name for f in font_manager.fontManager.ttflist):
        return
    for path in font_manager.findSystemFonts():
        if "CJK" in Path(path).name:
            font_manager.fontManager.addfont(path)


def charts(figures: dict[str, Any]) -> list[tuple[str, str]]:
    """(caption, PNG data URI) per chart: timeliness, confirmed rate per kind, draws."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    _cjk_fonts()
    plt.rcParams["font.sans-serif"] = ["Noto Sans CJK SC", "Noto Sans CJK JP", "DejaVu Sans"]
    plt.rcParams["axes.unicode_minus"] = False
    cov = figures["coverage"]
    out = []
    t = cov["clues_acted_on_time"]
    fig = Figure(figsize=(6, 3))
    ax = fig.subplots()
    keys = ("on_time", "late", "overdue", "pending")
    ax.bar(["\n".join(LABELS[("timeliness", k)]) for k in keys], [t[k] for k in keys],
           color=["#2e7d32", "#f9a825", "#c62828", "#90a4ae"])
    ax.set_ylabel("任务数 tasks")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    out.append(("线索处置及时性 Clues acted on in time", _png(fig)))
    rates = cov["confirmed_rate"]
    fig = Figure(figsize=(6, 3))
    ax = fig.subplots()
    ax.bar(list(rates) or ["-"], [r["rate"] or 0 for r in rates.values()] or [0], color="#1565c0")
    ax.set_ylim(0, 1)
    ax.set_ylabel("属实率 confirmed rate")
    out.append(("各类线索属实率 Confirmed rate per clue kind", _png(fig)))
    d = cov["draws"]
    fig = Figure(figsize=(6, 3))
    ax = fig.subplots()
    ax.bar(["计划 planned", "完成 done", "未完成 open"], [d["planned"], d["done"], d["open"]],
           color=["#5e35b1", "#2e7d32", "#c62828"])
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    out.append(("随机抽查完成情况 Random inspections done against planned", _png(fig)))
    return out


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def write(figures: dict[str, Any], department: str, month: str, out: Path) -> list[Path]:
    """Write ``report.csv`` and ``report.html`` into ``out`` (made if missing)."""
    out.mkdir(parents=True, exist_ok=True)
    table = rows(figures)
    csv_path, html_path = out / "report.csv", out / "report.html"
    with csv_path.open("w", encoding="utf-8-sig", newline="") as f:
        w = csv.writer(f)
        w.writerow(("section", "item", "value", "label_zh", "label_en"))
        for r in table:
            w.writerow([("" if v is None else v) for v in r])
    e = html.escape
    body = "".join(f"<tr><td>{e(zh)}<br><small>{e(en)}</small></td><td>{e(_fmt(v))}</td></tr>"
                   for _, _, v, zh, en in table)
    images = "".join(f'<figure><img src="{uri}" alt="{e(cap)}"><figcaption>{e(cap)}'
                     "</figcaption></figure>" for cap, uri in charts(figures))
    title = f"{department} {month} 月度执法监管报告 Monthly enforcement report"
    html_path.write_text(
        "<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\">"
        f"<title>{e(title)}</title><style>body{{font-family:sans-serif;margin:2em}}"
        "table{border-collapse:collapse}td{border:1px solid #ccc;padding:4px 8px}"
        "small{color:#666}figure{display:inline-block;margin:1em}</style></head><body>"
        f"<h1>{e(title)}</h1><p>统计区间 Period: {e(figures['since'])} — {e(figures['until'])}</p>"
        f"<table>{body}</table>{images}</body></html>", encoding="utf-8")
    return [csv_path, html_path]

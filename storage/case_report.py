"""The case bundle's ``report.html``: a readable page made from the manifest.

The page's text lives in ``storage/templates/`` (``case_report.html``, ``case_item.html``,
``string.Template``), so wording and layout change without touching code; this module only
escapes the manifest's values into it. Every value is HTML-escaped here: the clue's
summary and the evidence names come from the field and must not become markup.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from string import Template
from typing import Any

TEMPLATES = Path(__file__).resolve().parent / "templates"
_CLUE_FIELDS = ("clue_id", "modality", "kind", "rule", "subject", "state", "start", "time",
                "end", "confidence", "summary", "detector")


@cache
def template(name: str) -> Template:
    return Template((TEMPLATES / name).read_text(encoding="utf-8"))


def _fmt(value: Any) -> str:
    if value is None or value == "":
        return "&mdash;"
    if isinstance(value, dict | list):
        return f"<code>{html.escape(json.dumps(value, ensure_ascii=False))}</code>"
    return html.escape(str(value))


def _routing(routing: Mapping[str, Any] | None) -> str:
    if not routing or "error" in routing:
        return f"<p>{_fmt(routing.get('error') if routing else 'not routed')}</p>"
    e = html.escape
    zones = "".join(f"<li>{e(str(z.get('name') or z.get('id')))} ({e(str(z.get('kind')))})</li>"
                    for z in routing.get("zones") or [] if isinstance(z, Mapping))
    juris = routing.get("jurisdiction")
    juris_name = (juris.get("name") or juris.get("id")) if isinstance(juris, Mapping) else juris
    return (f"<p>Site: {_fmt(routing.get('site'))}. Jurisdiction: {_fmt(juris_name)}. "
            f"Department in charge: <b>{_fmt(routing.get('department'))}</b>; involved: "
            f"{_fmt(', '.join(routing.get('departments') or []))}.</p>"
            f"<ul>{zones or '<li>no protected zone touched</li>'}</ul>")


def _item(n: int, item: Mapping[str, Any]) -> str:
    e = html.escape
    rec = item["record"]
    file = item.get("file")
    if file and str(rec.get("media_type", "")).startswith("image/"):
        shown = (f'<a href="{e(file)}"><img src="{e(file)}" alt="{e(rec["name"])}" '
                 'style="max-width:100%;max-height:480px"></a>')
    elif file:
        shown = f'<a href="{e(file)}">{e(file)}</a>'
    else:
        shown = "<b>content missing from this bundle</b>"
    return template("case_item.html").substitute(
        n=n, name=e(rec["name"]), media_type=e(rec["media_type"]), shown=shown,
        id=e(rec["id"]), file=_fmt(file), size=_fmt(item.get("size")), sha256=e(rec["sha256"]),
        time=e(rec["time"]), fixed_at=e(rec["fixed_at"]), source=e(rec["source"]),
        seq=e(str(rec["seq"])), prev_hash=e(rec["prev_hash"]),
        record_hash=e(item["record_hash"]), key_id=e(rec["key_id"]),
        signature=e(item["signature"]), detector=_fmt(rec["detector"]),
        detector_version=_fmt(rec["detector_version"]), params=_fmt(rec["params"]))


def render_report(manifest: Mapping[str, Any], sign_domain: str) -> str:
    e = html.escape
    clue = manifest.get("clue") or {}
    rows = "".join(f"<tr><th>{e(k)}</th><td>{_fmt(clue.get(k))}</td></tr>" for k in _CLUE_FIELDS)
    timeline = "".join(
        f"<tr><td>{_fmt(ev.get('time'))}</td><td>{_fmt(ev.get('kind'))}</td>"
        f"<td>{_fmt(ev.get('state'))}</td>"
        f"<td>{_fmt((ev.get('payload') or {}).get('summary'))}</td></tr>"
        for ev in manifest.get("timeline", [])) or "<tr><td colspan=4>no events</td></tr>"
    items = manifest.get("items", [])
    first = (items or [{}])[0]
    sums = "\n".join(f"{it['record']['sha256']}  {it['file']}" for it in items if it.get("file"))
    keys = manifest.get("public_keys") or []
    key_line = (f"key id <code>{e(keys[-1]['key_id'])}</code>, raw public key "
                f"<code>{e(keys[-1]['public_key_hex'])}</code>" if keys else "no key")
    return template("case_report.html").substitute(
        clue_id=e(str(manifest.get("clue_id"))), exported_at=e(str(manifest.get("exported_at"))),
        item_count=len(items), clue_rows=rows, location=_fmt(manifest.get("location")),
        routing=_routing(manifest.get("routing")), timeline=timeline,
        items="".join(_item(n, it) for n, it in enumerate(items, start=1))
        or "<p>No evidence items.</p>",
        key_line=key_line, sums=e(sums), sign_domain=e(sign_domain),
        example_hash=e(first.get("record_hash", "RECORD_HASH")),
        example_sig=e(first.get("signature", "SIGNATURE")))

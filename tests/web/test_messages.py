"""All words of the pages sit in the message files: no Chinese in the code, and every key
the pages use exists in both languages (``web/static/i18n/{zh-CN,en}.json``)."""

from __future__ import annotations

import json
import re
from pathlib import Path

STATIC = Path(__file__).resolve().parents[2] / "web" / "static"
CJK = re.compile(r"[\u3000-\u9fff\uff00-\uffef]")


def messages(lang: str) -> dict[str, str]:
    return json.loads((STATIC / "i18n" / f"{lang}.json").read_text(encoding="utf-8"))


def test_no_words_in_the_code() -> None:
    for path in STATIC.glob("*.js"):
        assert not CJK.search(path.read_text(encoding="utf-8")), path.name
    for path in STATIC.glob("*.html"):
        # only the <title> fallback before the messages load (it carries data-i18n too)
        body = re.sub(r"<title data-i18n=[^>]*>[^<]*</title>", "",
                      path.read_text(encoding="utf-8"))
        assert not CJK.search(body), path.name


def test_every_key_used_exists_in_both_languages() -> None:
    zh, en = messages("zh-CN"), messages("en")
    assert zh.keys() == en.keys()
    used: set[str] = set()
    for path in STATIC.glob("*.html"):
        used |= set(re.findall(r'data-i18n(?:-placeholder|-title)?="([^"]+)"',
                               path.read_text(encoding="utf-8")))
    for path in STATIC.glob("*.js"):
        text = path.read_text(encoding="utf-8")
        used |= set(re.findall(r'\bt\("([\w.]+)"', text))
        used |= set(re.findall(r'"data-i18n": "([\w.]+)"', text))
    assert used, "no keys found"
    assert sorted(used - zh.keys()) == []

"""Column parsers of the power-monitoring registry files (issue 18).

``power_channels.csv`` (``entity,meter,channel,role,rated_kw,idle_kw``) says which meter
channel measures which side of an entity: its production line or its pollution-control
(treatment) equipment. ``shutdowns.csv`` (``scope,level,start,end``) lists declared
shutdowns, such as the production halts of a heavy-pollution emergency list; ``scope`` is
an entity or a zone id (a jurisdiction: every entity in it).

Neither file has an ``id`` column: a channel is known by ``meter/channel`` and a shutdown by
``scope@start``, which the folder parser makes the row's id, so import, re-import, prune
and export work as for every other kind.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

ROLES = ("production", "treatment")
#: a time without an offset in a registry file is China Standard Time
LOCAL = timezone(timedelta(hours=8))


def role(value: str) -> str:
    low = value.strip().lower()
    aliases = {"生产": "production", "治污": "treatment", "治理": "treatment",
               "环保": "treatment"}
    low = aliases.get(low, low)
    if low not in ROLES:
        raise ValueError(f"role {value!r} is not production or treatment")
    return low


def kilowatts(optional: bool) -> Callable[[str], float | None]:
    def parse(value: str) -> float | None:
        if value == "":
            if optional:
                return None
            raise ValueError("empty value")
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"not a number: {value!r}") from None
        if not 0 <= number < 1e7:
            raise ValueError(f"{number} kW is out of range")
        return number
    return parse


def moment(value: str) -> datetime:
    """ISO 8601 or ``YYYY-MM-DD HH:MM[:SS]`` (Excel); no offset: China Standard Time."""
    if value == "":
        raise ValueError("empty time")
    try:
        when = datetime.fromisoformat(value.replace("/", "-"))
    except ValueError:
        raise ValueError(f"not a time: {value!r}") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=LOCAL)


def _required_text(value: str) -> str:
    if not value:
        raise ValueError("is required")
    return value


COLUMNS: dict[str, dict[str, Callable[[str], Any]]] = {
    "power_channel": {"entity": _required_text, "meter": _required_text,
                      "channel": _required_text, "role": role,
                      "rated_kw": kilowatts(optional=True), "idle_kw": kilowatts(optional=False)},
    "shutdown": {"scope": _required_text, "level": _required_text, "start": moment,
                 "end": moment},
}
#: the columns a row's id is made of, and how
KEYS: dict[str, tuple[str, ...]] = {"power_channel": ("meter", "channel"),
                                    "shutdown": ("scope", "start")}


def row_id(kind: str, fields: dict[str, Any]) -> str:
    if kind == "shutdown":
        return f"{fields['scope']}@{fields['start'].astimezone(UTC).isoformat()}"
    return "/".join(str(fields[c]) for c in KEYS[kind])


def check_row(kind: str, fields: dict[str, Any]) -> list[str]:
    """Reasons a parsed row is wrong as a whole (beyond its columns)."""
    if kind == "shutdown" and "start" in fields and "end" in fields \
            and fields["end"] <= fields["start"]:
        return ["end is not after start"]
    return []

"""Pure checks behind the data-quality rules; no state, so each is testable on its own."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping, Sequence

from detectors.env_config import NO, NO2, NOX, O2, PH, SIGNED_CODES
from detectors.limits import o2_correct


def resolution_step(values: Sequence[float]) -> float:
    """The instrument's step: the most common non-zero change between consecutive values.

    The mode (not the minimum) because converted or interpolated values (0.2856 in a series
    of integers) would otherwise make the step look far finer than the instrument reports.
    """
    diffs = Counter(round(abs(b - a), 6) for a, b in zip(values, values[1:], strict=False)
                    if b != a)
    return diffs.most_common(1)[0][0] if diffs else 0.0


def floor_band(values: Sequence[float], step: float, configured: float = 0.0) -> float:
    """Highest value still counted as "at the floor" for flatline purposes.

    Real analysers sit at their detection floor for days (Dongsi SO2 at 2 µg/m³), and a value
    only a few resolution steps above zero cannot show variation at all, so runs there are no
    evidence of a stuck channel.
    """
    low = sorted(values)[len(values) // 20] if values else 0.0
    return max(configured, 2 * low, low + 3 * step, 5 * step)


def _median_of_sorted(ordered: Sequence[float]) -> float:
    n = len(ordered)
    if not n:
        raise ValueError("median of an empty window")
    half = n // 2
    return ordered[half] if n % 2 else (ordered[half - 1] + ordered[half]) / 2


def robust_z(x: float, window: Sequence[float], step: float = 0.0) -> float:
    """Median/MAD z-score (0.6745 scaling); MAD floored at the resolution step.

    Same arithmetic as ``statistics.median`` twice, but on lists sorted once each: this runs
    per code per reading and was the detector's largest single cost.
    """
    ordered = sorted(window)
    med = _median_of_sorted(ordered)
    mad = _median_of_sorted(sorted([abs(v - med) for v in ordered]))
    scale = max(mad, step, 1e-9)
    return 0.6745 * (x - med) / scale


def impossible(code: str, value: float) -> str | None:
    """Why a value cannot be physical, or None."""
    if code == PH:
        return None if 0.0 <= value <= 14.0 else "pH outside 0-14"
    if code == O2:
        return None if 0.0 <= value <= 21.0 else "O2 outside 0-21 %"
    if value < 0 and code not in SIGNED_CODES and code[:1] in ("a", "w") and "-" not in code:
        return "negative concentration"
    return None


def nox_mismatch(values: Mapping[str, float], rel_tol: float) -> dict[str, float] | None:
    """HJ 212 relation ``NOx = NO * 46/30 + NO2``; metrics when it is broken, else None."""
    if not all(c in values for c in (NOX, NO, NO2)):
        return None
    expected = values[NO] * 46.0 / 30.0 + values[NO2]
    diff = values[NOX] - expected
    if abs(diff) <= max(rel_tol * abs(expected), 1.0):
        return None
    return {"nox": values[NOX], "no": values[NO], "no2": values[NO2],
            "expected_nox": round(expected, 4), "difference": round(diff, 4)}


def zs_mismatches(values: Mapping[str, float], o2_refs: Mapping[str, float],
                  rel_tol: float) -> dict[str, dict[str, float]]:
    """Reported corrected (``-Zs``) values that do not follow the O2 correction formula."""
    out: dict[str, dict[str, float]] = {}
    o2 = values.get(O2)
    if o2 is None:
        return out
    for key, reported in values.items():
        code, _, suffix = key.partition("-")
        if not suffix.startswith("Zs") or code not in values or code not in o2_refs:
            continue
        expected = o2_correct(values[code], o2, o2_refs[code])
        if expected is None:
            continue
        if abs(reported - expected) > max(rel_tol * abs(expected), 0.5):
            out[code] = {"raw": values[code], "o2": o2, "o2_ref": o2_refs[code],
                         "reported_corrected": reported, "expected_corrected": round(expected, 4)}
    return out


def payload_hash(values: Mapping[str, float]) -> str:
    """Short digest of a reading's values, for spotting replayed blocks cheaply."""
    text = ";".join([f"{k}={v!r}" for k, v in sorted(values.items())])
    return hashlib.blake2b(text.encode(), digest_size=6).hexdigest()

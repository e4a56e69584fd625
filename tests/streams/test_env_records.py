"""``env.readings`` records: a station's batch or one reading, decoded by every consumer alike,
and a bad batch dead-lettered whole with the reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from contract.records import (
    READINGS_PER_RECORD,
    EnvReadings,
    Reading,
    ReadingBatch,
    env_records,
    readings_of,
)
from contract.topics import ENV_READINGS
from storage.sinks import ReadingsSink, RejectedSink
from streams.sinks import decode_or_reject

T0 = datetime(2026, 11, 25, tzinfo=UTC)


def series(station: str, n: int) -> list[Reading]:
    return [Reading(station=station, time=T0 + timedelta(hours=i), period="hour",
                    values={"a34004": float(i), "a21026": 2.0 * i}, flags={"a21026": "M"})
            for i in range(n)]


def test_producer_records_batch_in_order_and_single_stays_a_reading() -> None:
    readings = series("S1", 2 * READINGS_PER_RECORD + 3)
    records = env_records(readings)
    assert [type(r) for r in records] == [ReadingBatch] * 3
    assert [len(r.readings) for r in records] == [READINGS_PER_RECORD] * 2 + [3]
    decoded = [x for r in records for x in readings_of(EnvReadings.model_validate_json(r.dumps()))]
    assert decoded == readings
    one = env_records(readings[:1])
    assert one == readings[:1] and readings_of(EnvReadings.model_validate_json(
        one[0].dumps())) == readings[:1]


def test_batch_of_two_stations_is_refused() -> None:
    mixed = ReadingBatch.model_construct(station="S1", readings=series("S1", 2) + series("S2", 1))
    with pytest.raises(ValidationError, match="reading of station 'S2' in a batch of 'S1'"):
        EnvReadings.model_validate_json(mixed.model_dump_json())
    with pytest.raises(ValidationError):
        EnvReadings.model_validate_json(b'{"station": "S1", "readings": []}')


def test_a_reading_whose_codes_say_readings_still_decodes() -> None:
    odd = Reading(station="S1", time=T0, values={"readings": 1.0})
    assert readings_of(EnvReadings.model_validate_json(odd.dumps())) == [odd]


def test_sink_rows_from_batch_and_dead_letter_for_a_bad_batch() -> None:
    dead, sink = RejectedSink(), ReadingsSink()
    good = env_records(series("S1", 3))[0].dumps()
    bad = good.replace(b'"a34004":1.0', b'"a34004":"high"')
    for raw in (good, bad):
        record = decode_or_reject(ENV_READINGS, raw, dead)
        if record is not None:
            sink.add(record)
    assert [(r[1], r[2], r[4], r[5]) for r in sink.rows] == [
        ("S1", "a34004", 0.0, "N"), ("S1", "a21026", 0.0, "M"), ("S1", "a34004", 1.0, "N"),
        ("S1", "a21026", 2.0, "M"), ("S1", "a34004", 2.0, "N"), ("S1", "a21026", 4.0, "M")]
    assert len(dead) == 1 and dead.rows[0][4] == bad
    assert dead.rows[0][3].startswith("invalid EnvReadings: ")

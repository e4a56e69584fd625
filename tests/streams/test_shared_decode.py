"""``env.readings`` records are parsed once per worker for the readings sink and the env
monitor (``streams.shared_decode``): the second consumer gets the very record the first one
decoded, bad input still fails for each consumer, and held records stay under the bound."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from contract.records import EnvReadings, readings_of
from contract.settings import Settings
from streams.app import build_streams
from streams.env import group_by_station
from streams.shared_decode import SharedDecode


def batch(station: str, hours: int, start: int = 0) -> bytes:
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    return json.dumps({"station": station, "readings": [
        {"station": station, "time": (t0 + timedelta(hours=start + h)).isoformat(),
         "period": "hour", "values": {"a34004": 30.0 + h, "a21026": 5.0}}
        for h in range(hours)]}).encode()


def shared(consumers: int = 2, max_held: int = 1000) -> SharedDecode:
    dec = SharedDecode(EnvReadings.model_validate_json, lambda r: len(readings_of(r)),
                       max_held)
    dec.consumers = consumers
    return dec


def test_second_consumer_gets_the_first_ones_record() -> None:
    dec = shared()
    raw = batch("S1", 100)
    first = dec(raw)
    assert len(dec) == 1
    assert dec(bytes(raw)) is first  # equal bytes (another object) find it too
    assert len(dec) == 0  # both consumers took it: not held any longer
    assert dec(raw) is not first and dec(raw) == first  # asked again: decoded again


def test_invalid_input_fails_for_each_consumer_and_is_not_held() -> None:
    dec = shared()
    for _ in range(2):
        with pytest.raises(ValidationError):
            dec(b'{"station": "S1", "readings": [{"time": "not a time"}]}')
    assert len(dec) == 0


def test_held_records_stay_under_the_bound() -> None:
    dec = shared(max_held=250)  # readings
    raws = [batch("S1", 100, 100 * k) for k in range(5)]
    records = [dec(raw) for raw in raws]
    assert len(dec) == 2  # the oldest were dropped: 200 readings held
    assert dec(raws[0]) is not records[0] and dec(raws[4]) is records[4]


def test_the_worker_s_sink_and_monitor_share_one_decoder() -> None:
    streams = build_streams(Settings(database_url="postgresql://unused/x"),
                            modules=["streams.sinks", "streams.env"])
    decoder = streams.agents["streams.env"].validate
    assert decoder.consumers == 2
    raw = batch("S1", 3)
    record = decoder(raw)  # as the sink would decode it
    event = type("Event", (), {"value": raw,
                               "message": type("Message", (), {"partition": 1})()})()
    groups = group_by_station([event], decoder)
    assert groups["S1"][0] == 1 and groups["S1"][1][0] is readings_of(record)[0]

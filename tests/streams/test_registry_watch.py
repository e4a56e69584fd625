"""A registry change reaches a running worker without a restart.

The worker's registry watch (``streams.registry_watch``, the body of its Faust task) runs
on a real PostgreSQL: it loads the registered zones and rules at start, and a change
committed while it runs (zones and rules written as an import writes them, a station created
through the API's storage function) re-routes the next clue and makes the env agent read
the station's new interval.
"""

from __future__ import annotations

import asyncio

import psycopg

from storage.resources import create
from streams import env as E
from tests.streams.conftest import Build

ADMIN = {"id": "root", "department": "center", "role": "admin"}
SQUARE = ('{"type": "Polygon", "coordinates": [[[117, 36.6], [117.1, 36.6], [117.1, 36.7],'
          ' [117, 36.7], [117, 36.6]]]}')
POINT = {"type": "Point", "coordinates": [117.05, 36.65]}


def test_worker_routes_over_zones_rules_and_stations_changed_while_running(
        fresh_db: str, build: Build) -> None:
    with psycopg.connect(fresh_db) as conn:
        conn.execute("INSERT INTO departments (id, name) VALUES ('center', 'Center'),"
                     " ('370102-ecology-environment', 'eco'),"
                     " ('370102-natural-resources', 'nr')")
    streams, _ = build("streams.registry_watch", "streams.env", database_url=fresh_db)
    watch = streams.agents["streams.registry_watch"]
    env: E.EnvAgent = streams.agents["streams.env"]

    async def until(predicate: object, what: str) -> None:
        deadline = asyncio.get_running_loop().time() + 10
        while not predicate():  # type: ignore[operator]
            assert asyncio.get_running_loop().time() < deadline, what
            await asyncio.sleep(0.05)

    async def main() -> None:
        task = asyncio.create_task(watch.run())
        try:
            await asyncio.wait_for(watch.loaded.wait(), 10)
            before = streams.router.route(POINT, modality="satellite", kind="change")
            assert before.department != "370102-natural-resources"
            assert (await env.registry.lookup(["S1"]))["S1"].info.interval_s is None
            reloads = watch.reloads
            with psycopg.connect(fresh_db) as conn:  # what an import writes, one transaction
                conn.execute("INSERT INTO zones (id, kind, name, county, geometry) VALUES"
                             " ('cn-370102', 'jurisdiction', '历下区', '370102', %s),"
                             " ('farm-1', 'protected_farmland', 'farm', '370102', %s)",
                             (SQUARE, SQUARE))
                conn.execute("INSERT INTO routing_rules (position, clue, zone_kind, department)"
                             " VALUES (1, 'satellite/*', 'protected_farmland',"
                             " 'natural-resources'), (2, '*', '*', 'ecology-environment')")
                conn.execute("SELECT pg_notify('offsite_registry', 'zone'),"
                             " pg_notify('offsite_registry', 'routing_rule')")
            await until(lambda: watch.reloads >= reloads + 2, "the router was not reloaded")
            route = streams.router.route(POINT, modality="satellite", kind="change")
            assert route.department == "370102-natural-resources"
            assert streams.clue_exit.router is streams.router  # the clue exit routes with it
            pool = await streams.db_pool()
            await create(pool, "station", "S1", {"lon": 117.05, "lat": 36.65,
                                                "interval_s": 60, "owner_dept": "center"},
                         ADMIN)

            async def interval() -> int | None:
                return (await env.registry.lookup(["S1"]))["S1"].info.interval_s

            deadline = asyncio.get_running_loop().time() + 10
            while await interval() != 60:  # without the notice: cached for 30 s
                assert asyncio.get_running_loop().time() < deadline, "station not re-read"
                await asyncio.sleep(0.05)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await streams.close_pool()

    asyncio.run(main())

"""Schemathesis against the API's own OpenAPI document: every operation, real PostgreSQL,
real bearer tokens (an admin's and a ``department_user``'s), no server error, and every
answer as documented (status code, content type, body schema).

The world is ``bench.fuzz_api.seed_world``; half the generated path ids are ids that exist
(``known_values``), so cases get past the 404. Bounded here (``OFFSITE_API_FUZZ_EXAMPLES``
cases per operation, default 10); the long run is ``python -m bench.fuzz_api``. The bugs it
found each have a regression test in ``test_api_injection.py``.

The schema is loaded at import (``schemathesis.pytest.from_fixture`` fails on pytest 9:
it sets ``Function._nodeid``); only the base URL and the tokens come from the fixture.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterator

import psycopg
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from api.app import app
from bench import fuzz_api
from offsite.services import serve_api
from tests.conftest import new_database

EXAMPLES = int(os.environ.get("OFFSITE_API_FUZZ_EXAMPLES", "10"))
USERS = ("root", "wanda")  # admin, department_user of the owning department

_config = tomllib.loads(fuzz_api.config_toml(fuzz_api.known_values()))
schema = schemathesis.openapi.from_dict(app.openapi(),
                                        config=SchemathesisConfig.from_dict(_config))
for _path in fuzz_api.NEVER_ENDS:
    schema = schema.exclude(path=_path)


@pytest.fixture(scope="module")
def world(services) -> Iterator[dict]:  # type: ignore[no-untyped-def]
    with new_database(services) as url:
        with psycopg.connect(url) as conn:
            tokens = fuzz_api.seed_world(conn)
            assert fuzz_api.stored_values(conn) == fuzz_api.known_values()
        with serve_api(url) as base:
            yield {"base": base, "tokens": tokens}


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_as_documented(case, world: dict) -> None:  # type: ignore[no-untyped-def]
    checks = [getattr(schemathesis.checks, name) for name in fuzz_api.CHECKS]
    for user in USERS:
        case.call_and_validate(base_url=world["base"], checks=checks,
                               headers={"Authorization": f"Bearer {world['tokens'][user]}"})

"""The API's error answers, as the OpenAPI document describes them.

Every error is ``{"detail": ...}``. For 422 the detail is always FastAPI's list of
``{"loc", "msg", "type"}`` (``HTTPValidationError``), also for the checks made by hand after
parsing (a bad cursor or bbox, an empty period), so a client reads one shape; ``invalid``
makes those. Every other error's detail is one sentence (``Problem``). ``errors(...)`` gives
the ``responses=`` entries of the codes an operation can answer, so the document lists them
(schemathesis checks that no operation answers a code it does not document).

``Text`` and ``Time`` are the types of every text and time parameter that reaches SQL:
values PostgreSQL cannot store, or Python cannot read back, are a 422 at the edge instead of
a database error (a 500) in the middle (found by ``tests/api/test_api_schemathesis.py``).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import AfterValidator, BaseModel, StringConstraints


class Problem(BaseModel):
    detail: str


_WHY = {400: "a body that does not parse, or a request that contradicts the data",
        401: "no bearer token, or an invalid, expired or revoked one",
        403: "the caller's role may not do this",
        404: "not found, or not visible to the caller",
        409: "the resource is in a state that does not allow this",
        413: "the body is too large"}
AUTH = (401, 403, 404)


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": Problem, "description": _WHY[code]} for code in codes}


def invalid(loc: tuple[str, ...], msg: str, value: Any = None) -> RequestValidationError:
    """A 422 in FastAPI's own shape, for a value that parsed but makes no sense."""
    return RequestValidationError([{"type": "value_error", "loc": loc, "msg": msg,
                                    "input": value}])


# Text the database can store: PostgreSQL text holds no NUL character, and a lone UTF-16
# surrogate (``"\udb39"`` in a JSON string) is no character at all (pydantic rejects it for
# any str with a pattern). Every str parameter or body field that reaches SQL is this type.
NO_NUL = r"^[^\x00]*$"
Text = Annotated[str, StringConstraints(pattern=NO_NUL)]


def storable(loc: tuple[str, ...], value: str) -> str:
    """``value`` if it is ``Text``, else a 422: for fields parsed by hand (multipart)."""
    try:
        value.encode()
    except UnicodeEncodeError:
        raise invalid(loc, "not valid Unicode text") from None
    if "\x00" in value:
        raise invalid(loc, "text holds a NUL character")
    return value


EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 1, 1, tzinfo=UTC)


def in_range(value: datetime) -> datetime:
    """``value`` if it lies in [EARLIEST, LATEST) (naive: taken as UTC), else ValueError."""
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if not EARLIEST <= aware < LATEST:
        raise ValueError(f"time must be from {EARLIEST:%Y-%m-%d} to before {LATEST:%Y-%m-%d}")
    return value


# A time parameter: near year 1 or 9999 the offset or a default period (``/stats``) takes
# the value outside what Python's datetime holds (OverflowError, a 500), and PostgreSQL
# keeps times that Python then cannot read back. No record of this system is that old.
Time = Annotated[datetime, AfterValidator(in_range)]


async def validation_error(request: Request, exc: RequestValidationError) -> Response:
    """FastAPI's 422, written as ASCII JSON: the errors echo the input, and a lone surrogate
    in it (``"\\udb39"`` in a JSON body) made the default handler's UTF-8 encoding fail
    (a 500). ASCII JSON escapes it back as the client sent it."""
    body = json.dumps({"detail": jsonable_encoder(exc.errors())}, ensure_ascii=True)
    return Response(body, status_code=422, media_type="application/json")

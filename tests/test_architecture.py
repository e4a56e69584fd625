"""Structural rules of the code base (issue 13), checked on the source itself.

Each rule is one test; a failure lists every offending ``path:line``.

1. ``OFFSITE_`` settings are read only by ``contract/settings.py``. Scanned: every ``.py`` of
   the project except ``tests/`` (tests set up environments for the code under test).
   A *read* is, with ``K`` a string constant or f-string starting with ``OFFSITE_`` and
   ``environ`` any expression ending in the name or attribute ``environ``:
   ``getenv(K)`` / ``os.getenv(K)``; ``environ.get(K)``, ``environ.pop(K)``,
   ``environ.setdefault(K)``; ``environ[K]`` in a load (not an assignment or ``del``);
   ``K in environ`` / ``K not in environ``; a keyword ``envvar=K`` (typer/click read the
   variable themselves). Not reads, hence allowed anywhere: assigning ``environ[K] = v``,
   ``environ.update(...)``, and dicts with ``OFFSITE_`` keys built as the environment of a
   child process (writing settings for children is fine; the child's Settings reads them).
   A copy such as ``dict(os.environ)`` handed to a child is not followed.
2. SQL only in ``storage/``. Scanned: every ``.py`` except ``storage/``, ``tests/`` and
   ``bench/``. Offending: a string constant (an implicitly concatenated literal counts as one;
   an f-string by its literal parts) that, after leading whitespace, starts with one of
   ``SELECT INSERT UPDATE DELETE WITH CREATE ALTER DROP TRUNCATE COPY LISTEN NOTIFY`` in
   upper case followed by whitespace and more text. Upper case because SQL in this project
   is written so and prose ("Create a user ...") is not; docstrings are skipped.
3. No module outside ``bench/`` and ``tests/`` has more than 450 lines.
4. The import-linter contracts (``.importlinter``: the layers and the independence of
   ``ingest`` and ``streams``) hold: ``lint-imports`` from this interpreter's environment
   exits 0.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_LINES = 450
SQL_START = re.compile(
    r"\s*(SELECT|INSERT|UPDATE|DELETE|WITH|CREATE|ALTER|DROP|TRUNCATE|COPY|LISTEN|NOTIFY)\s+\S")
ENV_READ_METHODS = {"get", "pop", "setdefault"}


def _sources(*skip: str) -> Iterator[Path]:
    """Project ``.py`` files, without hidden folders (venv, state), egg-info and ``skip``."""
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT)
        top = rel.parts[0]
        if top.startswith(".") or top.endswith(".egg-info") or top in skip:
            continue
        if any(part.startswith(".") or part == "__pycache__" for part in rel.parts):
            continue
        yield path


def _where(path: Path, node: ast.AST) -> str:
    return f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}"


# -- 1. OFFSITE_ read only by the settings object --------------------------------------------

def _offsite_key(node: ast.AST | None) -> bool:
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str) and node.value.startswith("OFFSITE_")
    if isinstance(node, ast.JoinedStr) and node.values:
        return _offsite_key(node.values[0])
    return False


def _is_environ(node: ast.AST) -> bool:
    return (isinstance(node, ast.Name) and node.id == "environ") or (
        isinstance(node, ast.Attribute) and node.attr == "environ")


def _env_reads(tree: ast.AST) -> Iterator[ast.AST]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            first = node.args[0] if node.args else None
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name == "getenv" and _offsite_key(first):
                yield node
            elif (isinstance(func, ast.Attribute) and func.attr in ENV_READ_METHODS
                  and _is_environ(func.value) and _offsite_key(first)):
                yield node
            elif any(k.arg == "envvar" and _offsite_key(k.value) for k in node.keywords):
                yield node
        elif (isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load)
              and _is_environ(node.value) and _offsite_key(node.slice)):
            yield node
        elif (isinstance(node, ast.Compare) and _offsite_key(node.left)
              and any(isinstance(op, (ast.In, ast.NotIn)) for op in node.ops)
              and any(_is_environ(c) for c in node.comparators)):
            yield node


def test_offsite_settings_read_only_by_settings_object() -> None:
    settings = ROOT / "contract" / "settings.py"
    found = [_where(path, node) for path in _sources("tests") if path != settings
             for node in _env_reads(ast.parse(path.read_text(), str(path)))]
    assert not found, ("OFFSITE_ variables read outside contract/settings.py (add a Settings "
                       "field and use it):\n" + "\n".join(found))


def test_env_read_rule_catches_reads_and_allows_writes() -> None:
    """The rule above, on examples: each read is caught, each write is not."""
    reads = ['os.environ.get("OFFSITE_X")', 'os.getenv("OFFSITE_X", "1")', "getenv('OFFSITE_X')",
             'os.environ["OFFSITE_X"]', 'environ.pop("OFFSITE_X", None)',
             '"OFFSITE_X" in os.environ', 'typer.Option(None, envvar="OFFSITE_X")',
             'os.environ.get(f"OFFSITE_{name}")']
    writes = ['os.environ["OFFSITE_X"] = "1"', 'env = {"OFFSITE_X": url}',
              'os.environ.update({"OFFSITE_X": "1"})', 'os.environ.get("HOME")',
              'del os.environ["OFFSITE_X"]', 'child_env["OFFSITE_X"] = url']
    assert all(list(_env_reads(ast.parse(src))) for src in reads)
    assert not any(list(_env_reads(ast.parse(src))) for src in writes)


# -- 2. SQL only in storage/ -----------------------------------------------------------------

def _docstrings(tree: ast.AST) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                out.add(id(body[0].value))
    return out


def _sql_strings(tree: ast.AST) -> Iterator[tuple[ast.AST, str]]:
    """(node, text) of SQL-looking strings; an f-string's text has ``{}`` for each field."""
    skip = _docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            skip.update(id(v) for v in node.values)
            text = "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
        else:
            continue
        if id(node) not in skip and SQL_START.match(text):
            yield node, text


def test_sql_only_in_storage() -> None:
    found = [f"{_where(path, node)}: {text.strip()[:60]!r}"
             for path in _sources("storage", "tests", "bench")
             for node, text in _sql_strings(ast.parse(path.read_text(), str(path)))]
    assert not found, "SQL outside storage/ (move it into a storage/ function):\n" + "\n".join(
        found)


def test_sql_rule_catches_statements_not_prose() -> None:
    sql = ['conn.execute("SELECT 1")', 'x = f"LISTEN {channel}"',
           'q = ("INSERT INTO t (a)"\n     " VALUES (%s)")',
           'x = """\n  WITH a AS (SELECT 1) SELECT 2"""',
           'sql.SQL("COPY readings FROM STDIN")']
    prose = ['"""Create a user."""', 'x = "update"', 'methods = ["DELETE"]', 'x = "SELECTED"',
             'def f():\n    """SELECT the best: a docstring."""']
    assert all(list(_sql_strings(ast.parse(src))) for src in sql)
    assert not any(list(_sql_strings(ast.parse(src))) for src in prose)


# -- 3. module size --------------------------------------------------------------------------

def test_modules_at_most_450_lines() -> None:
    found = []
    for path in _sources("bench", "tests"):
        n = len(path.read_text().splitlines())
        if n > MAX_LINES:
            found.append(f"{path.relative_to(ROOT)}: {n} lines")
    assert not found, f"modules over {MAX_LINES} lines (split them by job):\n" + "\n".join(found)


# -- 4. import-linter contracts --------------------------------------------------------------

def test_import_contracts_kept() -> None:
    exe = Path(sys.executable).parent / "lint-imports"
    cmd = str(exe) if exe.exists() else shutil.which("lint-imports")
    assert cmd, "lint-imports is not installed: pip install -e '.[dev]'"
    result = subprocess.run([cmd, "--no-cache"], cwd=ROOT, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr

"""What verification trusts: pinned keys, the state folder's key, and the chain heads.

The database cannot vouch for itself: whoever can rewrite an evidence row can also add a
key to ``evidence_keys`` and re-sign the row with it, or delete the newest record of a
chain, which leaves a shorter chain that is perfectly valid. So verification takes its
anchors from outside the database:

* **keys**: those pinned in the settings (``OFFSITE_EVIDENCE_TRUSTED_KEYS``), those given
  on the command line, and the public half of the state folder's own private key (the key
  that signs; whoever holds the state folder is the issuer). Never the table.
* **heads**: every writer records each chain's newest (seq, record hash) in the state
  folder (``evidence_heads.json``, next to the key) after its transaction commits, so a
  chain that ends before its recorded head lost its tail, with or without ``--heads``.

And one rule for the key itself: a state folder without a key, for a database that already
holds evidence, is the wrong folder; making a new key there would silently split the
evidence between two issuers, so ``signer_for`` refuses.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import psycopg
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from storage.evidence_chain import KEY_FILE, ChainHead, EvidenceSigner, load_public_key

HEADS_FILE = "evidence_heads.json"


class WrongStateFolder(RuntimeError):
    """The state folder has no evidence key, but the database already holds evidence."""


def state_public_key(state_dir: str | Path) -> Ed25519PublicKey | None:
    """The public half of ``<state_dir>/evidence_ed25519.pem``; None if there is no key.

    Read only: never creates a key (that is ``EvidenceSigner.load_or_create``'s job, for
    writers).
    """
    path = Path(state_dir) / KEY_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    key = serialization.load_pem_private_key(raw, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} does not hold an Ed25519 private key")
    return key.public_key()


def trusted_keys(state_dir: str | Path, pinned: Iterable[str] = (),
                 given: Iterable[str | bytes] = ()) -> list[Ed25519PublicKey]:
    """Keys verification may accept: pinned in settings, given by hand, the state folder's."""
    keys = [load_public_key(k) for k in (*pinned, *given)]
    own = state_public_key(state_dir)
    if own is not None:
        keys.append(own)
    return keys


def evidence_summary(conn: psycopg.Connection) -> tuple[int, list[str]]:
    """How many evidence records the database holds, and the key ids that signed them."""
    row = conn.execute("SELECT count(*), coalesce(array_agg(DISTINCT key_id), '{}')"
                       " FROM evidence").fetchone()
    assert row is not None
    return int(row[0]), sorted(row[1] or [])


def signer_for(database_url: str | None, state_dir: str | Path) -> EvidenceSigner:
    """The state folder's signing key; made only where no evidence exists yet.

    Raises ``WrongStateFolder`` when the key file is absent but the database holds
    evidence: the operator points at another folder than the one the writers use.
    """
    folder = Path(state_dir)
    if not (folder / KEY_FILE).exists() and database_url:
        with psycopg.connect(database_url) as conn:
            count, key_ids = evidence_summary(conn)
        if count:
            raise WrongStateFolder(
                f"no evidence key in {folder.resolve()}, but the database holds {count} "
                f"evidence record(s) signed by key(s) {', '.join(key_ids)}: set "
                "OFFSITE_STATE_DIR to the folder given to `offsite up` (the one holding "
                f"{KEY_FILE}); no new key was made")
    return EvidenceSigner.load_or_create(folder)


# ---- chain heads kept by the writers ------------------------------------------------------


class HeadsFile:
    """Each chain's newest (seq, record hash), as the writers committed them.

    Updates take an exclusive ``flock`` on a lock file beside it and only ever move a head
    forward, so concurrent writers (several workers, the API's field photos) end with the
    highest head whatever order they finish in; the file is replaced atomically.
    """

    def __init__(self, state_dir: str | Path) -> None:
        self.path = Path(state_dir) / HEADS_FILE

    def read(self) -> dict[str, ChainHead]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        return {s: ChainHead(s, int(h["seq"]), str(h["record_hash"]))
                for s, h in data.get("heads", {}).items()}

    def advance(self, heads: Iterable[ChainHead]) -> None:
        heads = list(heads)
        if not heads:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = self.path.with_suffix(".lock")
        with open(lock, "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            current = self.read()
            changed = False
            for head in heads:
                known = current.get(head.source)
                if known is None or head.seq > known.seq:
                    current[head.source] = head
                    changed = True
            if changed:
                self._write(current)

    def _write(self, heads: Mapping[str, ChainHead]) -> None:
        body = json.dumps({"heads": {s: {"seq": h.seq, "record_hash": h.record_hash}
                                     for s, h in sorted(heads.items())}}, indent=1) + "\n"
        fd, tmp = tempfile.mkstemp(prefix=".heads-", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w") as out:
                out.write(body)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def heads_json(heads: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {s: {"seq": h.seq, "record_hash": h.record_hash} for s, h in sorted(heads.items())}

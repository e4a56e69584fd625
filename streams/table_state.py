"""Writing Faust table values from batches and timers."""

from __future__ import annotations

from typing import Any


def put_state(table: Any, partition: int, key: str, value: dict[str, Any],
              encoded: bytes | None = None) -> None:
    """Set a table key and send it to the changelog partition of its source partition.

    ``table[key] = value`` takes the partition from the *current* event, which in a batch
    is the last event's, not necessarily this key's; and there is none in a timer.

    ``encoded``: the value already serialised as JSON (what the table's json serializer
    would write, so recovery reads it the same way). The producer serialises a value only
    when it sends it, later: a value that keeps changing (a live detector state) must be
    frozen as bytes at once, and encoding it in the detector's thread keeps that work off
    the event loop.
    """
    table.data[key] = value
    if encoded is None:
        table.send_changelog(partition, key, value)
    else:
        table.send_changelog(partition, key, encoded, value_serializer="raw")


def delete_state(table: Any, partition: int, key: str) -> None:
    """Drop a table key and send its tombstone (a null value, as Faust's own ``del``) to
    the changelog partition of its source partition: recovery then forgets the key, and
    log compaction drops it."""
    table.data.pop(key, None)
    table.send_changelog(partition, key, None, value_serializer="raw")

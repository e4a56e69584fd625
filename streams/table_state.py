"""Writing Faust table values from batches and timers."""

from __future__ import annotations

from typing import Any


def put_state(table: Any, partition: int, key: str, value: dict[str, Any]) -> None:
    """Set a table key and send it to the changelog partition of its source partition.

    ``table[key] = value`` takes the partition from the *current* event, which in a batch
    is the last event's, not necessarily this key's; and there is none in a timer.
    """
    table.data[key] = value
    table.send_changelog(partition, key, value)

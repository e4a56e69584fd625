"""Cut a TCP byte stream from a data logger into HJ 212 frame candidates.

TCP delivers bytes, not frames: one read may hold half a frame, or two frames and some
line noise. :class:`FrameSplitter` buffers per connection and yields what it can cut:

* a frame starts at ``##`` followed by 4 decimal digits (anything else is garbage, and the
  splitter resynchronises on the next ``##``);
* it ends at the first line feed (CRLF or bare LF: devices that miscount the length still
  end their lines), or -- for devices that send no line ending -- where the declared
  length says it ends when the next ``##`` starts exactly there, or when the caller sees
  the line go quiet (:meth:`FrameSplitter.flush_pending`);
* a ``##`` seen before the line ends means the earlier frame was cut short: its bytes
  become garbage;
* a candidate that grows past ``max_frame`` without ending is dropped (garbage), so the
  buffer never holds more than ``max_frame`` bytes however a sender misbehaves. Garbage
  is kept up to ``max_garbage`` bytes per run (the rest is only counted).

Whether a candidate is a good frame is :func:`ingest.hj212.codec.parse_frame`'s call. The
module is pure: no I/O, no clock.
"""

from __future__ import annotations

from typing import Literal

__all__ = ["FrameSplitter", "Piece"]

Piece = tuple[Literal["frame", "garbage"], bytes]
_DIGITS = frozenset(b"0123456789")
HEADER = 6  # "##" + 4 digits
TRAILER = 4  # CRC hex digits


class FrameSplitter:
    def __init__(self, max_frame: int = 16 * 1024, max_garbage: int = 4096) -> None:
        if max_frame < HEADER + TRAILER + 2:
            raise ValueError("max_frame too small")
        self.max_frame = max_frame
        self.max_garbage = max_garbage
        self._buf = bytearray()
        self._garbage = bytearray()
        self._scanned = 0  # bytes of the current candidate already searched for its end
        self.garbage_bytes = 0
        """Every byte ever discarded as garbage (also those beyond ``max_garbage``)."""

    def __len__(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[Piece]:
        """Add received bytes; return the frames (and garbage runs) now complete, in order."""
        self._buf += data
        out: list[Piece] = []
        while True:
            start = self._buf.find(b"##")
            if start < 0:
                keep = 1 if self._buf.endswith(b"#") else 0
                self._discard(len(self._buf) - keep, out)
                break
            if start:
                self._discard(start, out)
            cut = self._cut()
            if cut is None:
                break
            kind, size = cut
            if kind == "garbage":
                self._discard(size, out)
                continue
            self._flush_garbage(out)
            out.append(("frame", bytes(self._buf[:size])))
            del self._buf[:size]
            self._scanned = 0
        if len(self._garbage) >= self.max_garbage:
            self._flush_garbage(out)
        return out

    @property
    def pending_complete(self) -> bool:
        """The buffer holds a frame as long as its header declares, with no line ending
        yet: either the CRLF is on its way or the device sends none."""
        end = self._declared_end()
        return end is not None and len(self._buf) >= end

    def flush_pending(self) -> list[Piece]:
        """Cut a length-complete frame that never got its line ending (call when the line
        has been quiet for a moment), then go on cutting what follows it."""
        end = self._declared_end()
        if end is None or len(self._buf) < end:
            return []
        piece: Piece = ("frame", bytes(self._buf[:end]))
        del self._buf[:end]
        self._scanned = 0
        return [piece, *self.feed(b"")]

    def close(self) -> list[Piece]:
        """The connection ended: whatever is left is a last candidate or garbage."""
        out: list[Piece] = []
        if self._buf.startswith(b"##") and len(self._buf) >= HEADER + TRAILER:
            self._flush_garbage(out)
            out.append(("frame", bytes(self._buf)))
            self._buf.clear()
            self._scanned = 0
        else:
            self._discard(len(self._buf), out)
        self._flush_garbage(out)
        return out

    def _declared_end(self) -> int | None:
        buf = self._buf
        if len(buf) < HEADER or not buf.startswith(b"##") \
                or not all(b in _DIGITS for b in buf[2:HEADER]):
            return None
        return HEADER + int(buf[2:HEADER]) + TRAILER

    def _cut(self) -> tuple[Literal["frame", "garbage"], int] | None:
        """The buffer starts with ``##``: what to cut off its front, or None to wait."""
        buf = self._buf
        for i in range(2, min(len(buf), HEADER)):
            if buf[i] not in _DIGITS:
                return "garbage", 1  # "###0101": drop one byte, try again from the next "#"
        if len(buf) < HEADER:
            return None
        declared_end = HEADER + int(buf[2:HEADER]) + TRAILER
        scan_from = max(HEADER, self._scanned - 1)  # a byte-by-byte sender costs O(n), not O(n²)
        newline = buf.find(b"\n", scan_from, self.max_frame)
        nxt = buf.find(b"##", scan_from, self.max_frame)
        if nxt >= 0 and (newline < 0 or nxt < newline):
            # another frame starts before this line ended: it had no line ending (and
            # then the declared length says so) or it was cut short
            return ("frame", nxt) if nxt == declared_end else ("garbage", nxt)
        if newline >= 0:
            return "frame", newline + 1
        if len(buf) >= self.max_frame:
            return "garbage", 2  # too long: drop its "##", resync on the next one
        self._scanned = len(buf)
        return None

    def _discard(self, size: int, out: list[Piece]) -> None:
        if size <= 0:
            return
        room = self.max_garbage - len(self._garbage)
        if room > 0:
            self._garbage += self._buf[:min(size, room)]
        self.garbage_bytes += size
        del self._buf[:size]
        self._scanned = 0
        if len(self._garbage) >= self.max_garbage:
            self._flush_garbage(out)

    def _flush_garbage(self, out: list[Piece]) -> None:
        if self._garbage:
            out.append(("garbage", bytes(self._garbage)))
            self._garbage.clear()

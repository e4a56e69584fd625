"""CRC checks for HJ 212 frames.

The standard (Appendix A) defines its own CRC: it shifts the *register* right by 8 before
XOR-ing in each byte, so before the bit loop the register holds only 8 bits and the result
is a fixed function of them: it can only take 256 distinct values. That makes it a framing
check, never evidence of integrity. Real loggers often send CRC-16/MODBUS instead (same
polynomial, but the byte is XOR-ed into the low byte), sometimes printed byte-swapped. We
compute all three so a frame from such a device is classified and kept rather than silently dropped.
"""

from __future__ import annotations

from typing import Literal

__all__ = ["CrcVariant", "classify_crc", "crc_hj212", "crc_modbus", "format_crc", "swap_bytes"]

CrcVariant = Literal["hj212", "modbus", "modbus-swapped"]

_POLY = 0xA001


def _shift8(value: int) -> int:
    """The standard's inner loop: 8 right shifts, XOR-ing the polynomial on a carried 1."""
    for _ in range(8):
        lsb = value & 1
        value >>= 1
        if lsb:
            value ^= _POLY
    return value


#: Both CRCs spend their time in the same 8-step loop on an 8-bit value; tabulate it once
#: (a frame of 1 KB is checked in well under a millisecond).
_TABLE = tuple(_shift8(x) for x in range(256))


def crc_hj212(data: bytes) -> int:
    """Return the HJ 212-2017 Appendix A CRC of ``data`` (the data segment's bytes).

    Per byte: ``reg = (reg >> 8) ^ byte`` then the 8-step loop, i.e. ``_TABLE[...]``.
    """
    reg = 0xFFFF
    table = _TABLE
    for byte in data:
        reg = table[(reg >> 8) ^ byte]
    return reg


def crc_modbus(data: bytes) -> int:
    """Return CRC-16/MODBUS of ``data``: what many loggers send instead of Appendix A."""
    reg = 0xFFFF
    table = _TABLE
    for byte in data:
        reg = (reg >> 8) ^ table[(reg ^ byte) & 0xFF]
    return reg


def swap_bytes(value: int) -> int:
    """Swap the two bytes of a 16-bit value (Modbus puts the low byte first on the wire)."""
    return ((value & 0xFF) << 8) | (value >> 8)


def format_crc(value: int) -> str:
    """Print a CRC the way the standard does: four upper-case hex digits."""
    return f"{value:04X}"


def classify_crc(data: bytes, sent: str) -> CrcVariant | None:
    """Say which known CRC algorithm produced ``sent`` over ``data``, or None if none did.

    The standard's algorithm is tried first: with only 256 possible values it can collide
    with a Modbus CRC by chance, and a frame that satisfies the standard must count as
    standard. Hex case is ignored because devices send lower case.
    """
    try:
        value = int(sent, 16)
    except ValueError:
        return None
    if len(sent) != 4:
        return None
    if crc_hj212(data) == value:
        return "hj212"
    modbus = crc_modbus(data)
    if modbus == value:
        return "modbus"
    if swap_bytes(modbus) == value:
        return "modbus-swapped"
    return None

"""HJ 212 (HJ/T 212-2005, HJ 212-2017, HJ 212-2025) frames: parse, build, reassemble.

``parse_frame`` raises only :class:`HJ212Error` and keeps non-standard frames, flagged;
``to_reading`` maps data uploads to :class:`contract.records.Reading`; ``build`` makes
replies, commands and uploads; ``Reassembler`` joins sub-packets.
"""

from ingest.hj212 import build
from ingest.hj212.codec import (
    CHINA_TZ,
    Frame,
    HJ212Error,
    parse_data_time,
    parse_frame,
    to_reading,
    version_of_flag,
)
from ingest.hj212.crc import classify_crc, crc_hj212, crc_modbus
from ingest.hj212.reassembly import Reassembler, merge_packets

__all__ = ["CHINA_TZ", "Frame", "HJ212Error", "Reassembler", "build", "classify_crc",
           "crc_hj212", "crc_modbus", "merge_packets", "parse_data_time", "parse_frame",
           "to_reading", "version_of_flag"]

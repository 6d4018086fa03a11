"""Vectorized text building for generated landing files.

Millions of JSON lines a day cannot be formatted one Python object at a time, so every helper
here turns whole NumPy columns into fixed-width ASCII or Arrow string arrays in C loops.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
# Two hex characters per byte value, little-endian so that a uint16 view lays them out in order.
_HEX_PAIRS = _HEX[np.arange(256) >> 4].astype(np.uint16) | (_HEX[np.arange(256) & 15].astype(np.uint16) << 8)
_DIGIT = np.uint8(ord("0"))


def ascii_array(chars: np.ndarray) -> pa.Array:
    """An (n, width) uint8 matrix of ASCII bytes as an Arrow string array, one row a string."""
    n, width = chars.shape
    fixed = pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), n, [None, pa.py_buffer(np.ascontiguousarray(chars))])
    return fixed.cast(pa.binary()).cast(pa.string())


def digits(values: np.ndarray, width: int) -> np.ndarray:
    """Zero-padded decimal digits of non-negative integers as an (n, width) uint8 matrix."""
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    return ((values.astype(np.int64)[:, None] // powers) % 10).astype(np.uint8) + _DIGIT


def uuid_strings(rng: np.random.Generator, n: int) -> pa.Array:
    """Random UUID-shaped ids (8-4-4-4-12 hex), as the app's event ids look."""
    raw = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
    hexed = _HEX_PAIRS[raw].view(np.uint8)
    out = np.full((n, 36), ord("-"), dtype=np.uint8)
    for dst, src in (
        ((0, 8), (0, 8)),
        ((9, 13), (8, 12)),
        ((14, 18), (12, 16)),
        ((19, 23), (16, 20)),
        ((24, 36), (20, 32)),
    ):
        out[:, dst[0] : dst[1]] = hexed[:, src[0] : src[1]]
    return ascii_array(out)


def iso_timestamps(epoch_ms: np.ndarray, offset_minutes: np.ndarray) -> pa.Array:
    """ISO-8601 local times with their UTC offset, as devices send them (`...T20:15:03.120+05:30`).

    An offset of zero is written `Z`, the way most clients serialise UTC.
    """
    local_ms = epoch_ms + offset_minutes.astype(np.int64) * 60_000
    days = local_ms // 86_400_000
    ms_of_day = local_ms - days * 86_400_000
    day_values, day_index = np.unique(days, return_inverse=True)
    dates = (
        np.array([np.datetime_as_string(np.datetime64(int(d), "D")).encode() for d in day_values], dtype="S10")
        .view(np.uint8)
        .reshape(-1, 10)
    )
    n = len(epoch_ms)
    out = np.empty((n, 23), dtype=np.uint8)
    out[:, 0:10] = dates[day_index]
    out[:, 10] = ord("T")
    secs, millis = np.divmod(ms_of_day, 1000)
    mins, sec = np.divmod(secs, 60)
    hour, minute = np.divmod(mins, 60)
    out[:, 11:13] = digits(hour, 2)
    out[:, 13] = ord(":")
    out[:, 14:16] = digits(minute, 2)
    out[:, 16] = ord(":")
    out[:, 17:19] = digits(sec, 2)
    out[:, 19] = ord(".")
    out[:, 20:23] = digits(millis, 3)
    suffix = np.full((n, 6), ord(" "), dtype=np.uint8)
    suffix[:, 0] = np.where(offset_minutes < 0, ord("-"), ord("+"))
    off = np.abs(offset_minutes)
    suffix[:, 1:3] = digits(off // 60, 2)
    suffix[:, 3] = ord(":")
    suffix[:, 4:6] = digits(off % 60, 2)
    stamp = ascii_array(out)
    offsets = pc.if_else(pa.array(offset_minutes == 0), "Z", ascii_array(suffix))
    return pc.binary_join_element_wise(stamp, offsets, "")


def ints(values: np.ndarray) -> pa.Array:
    return pc.cast(pa.array(values), pa.string())


def where(mask: np.ndarray, values: pa.Array | str) -> pa.Array:
    """`values` where mask holds, null elsewhere; joined with null_handling='skip', null means absent."""
    return pc.if_else(pa.array(mask), values, pa.scalar(None, pa.string()))


def join(*pieces: pa.Array | str) -> pa.Array:
    """Concatenate row-wise; null pieces are left out, which is how optional JSON fields vanish."""
    return pc.binary_join_element_wise(*pieces, "", null_handling="skip")


def gzip_write(path: Path, lines: pa.Array) -> None:
    """Write newline-terminated lines as one gzip member, straight from Arrow's data buffer."""
    lines = lines.cast(pa.string())
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32, count=len(lines) + 1, offset=lines.offset * 4)
    body = memoryview(lines.buffers()[2])[offsets[0] : offsets[-1]] if len(lines) else b""
    compressor = zlib.compressobj(1, zlib.DEFLATED, 31)  # wbits 31: gzip framing
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(compressor.compress(body) + compressor.flush())
    tmp.replace(path)

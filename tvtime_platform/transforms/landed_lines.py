"""Landing files as lines: bytes split at newlines and judged against RFC 8259 before any engine parses them.

Both engines read landing files through this module (DuckDB in the asset's process, Spark in its
Python workers through `mapInArrow`), so what a line is and whether it is JSON is the platform's
decision, made once, and never an engine reader's or parser's accident. It needs only the standard
library, NumPy, PyArrow and fsspec, and nothing else of the platform: the Spark job ships it beside
itself (`--py-files`).

What a file holds:
- A landing file is gzip; every member is read. A file cut short (an interrupted upload) keeps
  every line that decompressed, the cut one included (which then fails as JSON). A file that is
  not gzip, or bytes after the gzip data that are not, become one `unreadable_file` row naming the
  problem. A zero-byte file holds nothing.
- A line is the bytes before a `\\n`; the last one may lack it. A `\\r` right before the `\\n` belongs
  to the line ending (CRLF). A UTF-8 byte-order mark at the very start of a file is dropped
  (RFC 8259 section 8.1 lets a parser ignore it); anywhere else it is a character like any other.
- A line of nothing but spaces, tabs and CRs is blank: not a line, not counted.
- A line that is not valid UTF-8 is `invalid_utf8`: `line` holds it with the bad bytes as `\\xNN`
  escapes and `raw_bytes` holds its exact bytes. A line of more than `MAX_LINE_BYTES` is
  `line_too_long`, with its first `KEPT_BYTES` in `line` and `raw_bytes`. Neither stops the file.
  NUL bytes are characters (U+0000); JSON allows them nowhere unescaped, so such a line fails below.

The grammar is RFC 8259's JSON-text (whitespace = space, tab, CR, LF). Not JSON: trailing commas,
`NaN`/`Infinity`, leading zeros, `+1`, `.5`, single quotes, comments, unescaped control characters
in strings, escapes other than the eight of the RFC and `\\uXXXX`, anything after the value. Where the
RFC leaves the choice to the parser, the platform's rules:
- an escaped lone surrogate (`"\\ud800"`) is refused: it is no Unicode text;
- objects and arrays may nest `MAX_DEPTH` deep, no deeper;
- numbers have any size (`1e400` is a number; whether it fits a field is the schema's question);
- a key repeated inside an object is allowed (the RFC allows it), but a line that repeats one of
  the `fields` the caller names at its top level is refused as `repeated_field:<name>`: which of
  the two values is meant cannot be known.
A line that is JSON but not an object, or that breaks the grammar, is `malformed_json`.

How, fast: a line of at most 16 KiB that is a flat object of plain strings (no `\\u` escapes),
integers of at most 18 digits, booleans and nulls, and repeats none of the `fields`, is valid as it
stands, and any JSON parser reads it alike; a vectorized RE2 match (PyArrow) recognizes those. Every other line is
parsed in Python, and when valid handed on as `doc`: its named fields alone, re-serialized in that
plain form (integral numbers as integers, one beyond 64 bits as 2^63 or -2^63-1, a fractional one as 0.5,
objects and arrays as `{}` and `[]`), which the engines type the same way.

`LineCounter` counts the non-blank lines of a file independently of the reader above, for the
balance that proves no line was lost between the landing zone and the lake.
"""

from __future__ import annotations

import codecs
import datetime as dt
import json
import queue
import re
import threading
import zlib
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

MAX_LINE_BYTES = 1 << 20
KEPT_BYTES = 1 << 10
MAX_DEPTH = 64
BOM = b"\xef\xbb\xbf"
BLANK = b" \t\r"
# Longer lines are judged in Python, so no engine parser meets its own limits (Jackson: 50,000-char names).
PLAIN_BYTES = 16 << 10
READ_BYTES = 1 << 20  # compressed bytes read at a time
BLOCK_BYTES = 8 << 20  # decompressed bytes handled at a time

UNREADABLE_FILE, INVALID_UTF8, LINE_TOO_LONG, MALFORMED_JSON = (
    "unreadable_file",
    "invalid_utf8",
    "line_too_long",
    "malformed_json",
)
REPEATED_FIELD = "repeated_field:"
TRUNCATED = "truncated: the gzip stream ends early (an interrupted upload?)"

SCHEMA = pa.schema(
    [
        ("landing_date", pa.date32()),
        ("source_file", pa.string()),
        ("line_number", pa.int64()),
        ("line", pa.string()),
        ("doc", pa.string()),
        ("line_reason", pa.string()),
        ("raw_bytes", pa.binary()),
    ]
)
COUNT_SCHEMA = pa.schema(
    [("landing_date", pa.date32()), ("source_file", pa.string()), ("lines", pa.int64()), ("problem", pa.string())]
)
# The same two schemas as Spark DDL (the Spark job's mapInArrow outputs).
SPARK_SCHEMA = (
    "landing_date DATE, source_file STRING, line_number BIGINT, line STRING, doc STRING, line_reason STRING, "
    "raw_bytes BINARY"
)
SPARK_COUNT_SCHEMA = "landing_date DATE, source_file STRING, lines BIGINT, problem STRING"

_WS = r"[ \t\r\n]*"
_STRING = r'"(?:[^"\\\x00-\x1f]|\\["\\/bfnrt])*"'
_VALUE = rf"(?:{_STRING}|-?(?:0|[1-9][0-9]{{0,17}})|true|false|null)"
_MEMBER = rf"{_STRING}{_WS}:{_WS}{_VALUE}"
PLAIN_OBJECT = rf"^{_WS}\{{{_WS}(?:{_MEMBER}{_WS}(?:,{_WS}{_MEMBER}{_WS})*)?\}}{_WS}$"


def repeated_field_pattern(fields: Iterable[str]) -> str:
    """A plain object repeating one of `fields` as a key (in a plain object, `"name":` occurs only as a key)."""
    return "|".join(rf'"{re.escape(f)}"{_WS}:.*"{re.escape(f)}"{_WS}:' for f in fields)


# --- files to blocks of bytes ----------------------------------------------------------------------------------------


@dataclass
class Inflated:
    """The decompressed bytes of a gzip file, block by block; after iterating, `problem` says what was wrong, if
    anything,
    and `data_bytes` how much decompressed."""

    read: Callable[[int], bytes]
    problem: str | None = None
    data_bytes: int = 0
    compressed_bytes: int = 0

    def __iter__(self) -> Iterator[bytes]:
        decompressor, pending = zlib.decompressobj(31), b""
        try:
            while True:
                if not pending:
                    pending = self.read(READ_BYTES)
                    if not pending:
                        if tail := decompressor.flush():  # output zlib still held back when its input ran out
                            self.data_bytes += len(tail)
                            yield tail
                        break
                    self.compressed_bytes += len(pending)
                if decompressor.eof:  # another gzip member follows
                    decompressor = zlib.decompressobj(31)
                data = decompressor.decompress(pending, BLOCK_BYTES)  # bounded: a small file may inflate enormously
                pending = decompressor.unconsumed_tail or decompressor.unused_data
                if data:
                    self.data_bytes += len(data)
                    yield data
        except zlib.error as error:
            where = f" after {self.data_bytes:,} bytes of lines" if self.data_bytes else ""
            self.problem = f"not gzip data{where}: {error}"
            return
        if self.compressed_bytes and not decompressor.eof:
            self.problem = TRUNCATED


def open_url(url: str) -> BinaryIO:
    """A landing file by its URL (a path or s3://...), opened as the literal name it is: no globbing."""
    if "://" not in url:
        return open(url, "rb")
    from fsspec.core import url_to_fs  # s3fs takes the endpoint and credentials from the standard AWS environment

    fs, path = url_to_fs(url)
    return fs.open(path, "rb")


# --- the independent count -------------------------------------------------------------------------------------------

_BLANK_MAY_FOLLOW = re.compile(rb"\n[\n \t\r]")  # a line after this newline may be blank


def _without_mark(blocks: Iterable[bytes]) -> Iterator[bytes]:
    """The blocks of a file without a UTF-8 byte-order mark at its very start, however the blocks split the mark."""
    head = b""
    blocks = iter(blocks)
    for block in blocks:
        head += block
        if len(head) >= len(BOM) or not BOM.startswith(head):
            break
    if head:
        yield head.removeprefix(BOM)
    yield from blocks


class LineCounter:
    """Non-blank lines of a file's decompressed bytes (fed without their byte-order mark), counted apart from the
    reader:
    newline-separated segments holding a byte other than space, tab and CR."""

    def __init__(self) -> None:
        self.lines, self._pending = 0, False

    def feed(self, block: bytes) -> None:
        if not block:
            return
        if block[:1] not in b" \t\r\n" and not _BLANK_MAY_FOLLOW.search(block):
            # No segment can be blank: each starts with a byte that is not space, tab, CR or newline. Its first one ends
            # the line under way, each newline after it ends one more, and what follows the last one is under way.
            newlines = block.count(b"\n")
            self.lines += newlines
            self._pending = True if not newlines else not block.endswith(b"\n")
            return
        parts = block.translate(None, BLANK).split(b"\n")
        if len(parts) == 1:
            self._pending = self._pending or bool(parts[0])
            return
        middle = parts[1:-1]
        self.lines += (self._pending or bool(parts[0])) + len(middle) - middle.count(b"")
        self._pending = bool(parts[-1])

    def total(self) -> int:
        return self.lines + self._pending


def _has_unreadable_row(problem: str | None) -> bool:
    """Whether a file's problem leaves a row of its own: bytes that are not gzip do; a cut file's last line is a
    line."""
    return problem is not None and problem != TRUNCATED


def count_file(url: str) -> tuple[int, str | None]:
    """The rows a landing file must leave: its non-blank lines, plus one for bytes that are not gzip; and its
    problem."""
    counter = LineCounter()
    with open_url(url) as f:
        inflated = Inflated(f.read)
        for block in _without_mark(inflated):
            counter.feed(block)
    return counter.total() + _has_unreadable_row(inflated.problem), inflated.problem


# --- the reader ------------------------------------------------------------------------------------------------------


class _Number(str):
    """A JSON number's literal, kept as written: validation converts nothing."""


class _Members(list):
    """A JSON object as its (key, value) pairs, repeats included."""


def _refuse(constant: str):
    raise ValueError(f"{constant} is not JSON")


_NUMBER = re.compile(r"(-?)([0-9]+)(?:\.([0-9]+))?(?:[eE]([+-]?[0-9]+))?")
_OUT_OF_RANGE = {"": "9223372036854775808", "-": "-9223372036854775809"}  # 2^63 and -(2^63)-1, as the engines read them


def _plain_number(literal: str) -> str:
    """A number as the engines all type it alike: integral ones as integers (beyond 64 bits, just beyond), others as
    0.5.

    Judged on the digits, not converted: a literal may hold a million digits or an exponent of any size.
    """
    sign, whole, fraction, exponent = _NUMBER.fullmatch(literal).groups()
    digits = (whole + (fraction or "")).lstrip("0")
    if not digits:
        return "0"
    scale = -len(fraction or "") + (len(digits) - len(digits.rstrip("0")))  # value = digits' * 10^(scale + exponent)
    digits = digits.rstrip("0")
    exponent = exponent or "0"
    magnitude = exponent.lstrip("+-").lstrip("0")  # (an exponent may be written with leading zeros)
    if len(magnitude) > 30:  # beyond any number of digits a line can hold: its sign decides
        return "0.5" if exponent.startswith("-") else _OUT_OF_RANGE[sign]
    power = scale + int(exponent)
    if power < 0:
        return "0.5"
    if len(digits) + power > 19:
        return _OUT_OF_RANGE[sign]
    value = int(sign + digits) * 10**power
    return str(value) if -(1 << 63) <= value < (1 << 63) else _OUT_OF_RANGE[sign]


def _plain(value: object) -> str:
    if isinstance(value, _Number):
        return _plain_number(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, _Members):
        return "{}"
    if isinstance(value, list):
        return "[]"
    return json.dumps(value)  # true, false, null


def _is_text(value: object) -> bool:
    """Whether every string in a parsed value (keys included) is Unicode text, and it nests at most MAX_DEPTH deep."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str) and not isinstance(item, _Number):
            if not item.isascii():
                try:
                    item.encode("utf-8")
                except UnicodeEncodeError:  # an escaped lone surrogate
                    return False
        elif isinstance(item, list):
            if depth >= MAX_DEPTH:
                return False
            members = item if not isinstance(item, _Members) else [part for pair in item for part in pair]
            stack.extend((member, depth + 1) for member in members)
    return True


def judge(text: str, fields: tuple[str, ...]) -> tuple[str | None, str | None]:
    """The exact verdict on a line: (reason, None) when refused, else (None, its named fields as a plain object)."""
    try:
        value = json.loads(
            text, parse_constant=_refuse, parse_int=_Number, parse_float=_Number, object_pairs_hook=_Members
        )
    except (ValueError, RecursionError):
        return MALFORMED_JSON, None
    if not isinstance(value, _Members) or not _is_text(value):
        return MALFORMED_JSON, None
    named = {}
    for key, member in value:
        if key in fields:
            if key in named:
                return REPEATED_FIELD + key, None
            named[key] = member
    return None, "{" + ",".join(f"{json.dumps(k)}:{_plain(v)}" for k, v in named.items()) + "}"


def _special(number: int, reason: str, data: bytes) -> tuple[int, str, str, bytes]:
    """A line kept as bytes: an escaped form readable as text, and the bytes themselves."""
    return number, data.decode("utf-8", "backslashreplace"), reason, data


class LineReader:
    """Turns one landing file's decompressed blocks into record batches of `SCHEMA`."""

    def __init__(self, landing_date: dt.date, source_file: str, fields: tuple[str, ...]) -> None:
        self.landing_date, self.source_file, self.fields = landing_date, source_file, tuple(fields)
        self.repeated = repeated_field_pattern(self.fields)

    def batches(self, blocks: Iterable[bytes]) -> Iterator[pa.RecordBatch]:
        """The rows of a file's decompressed blocks, given without the file's byte-order mark (`_without_mark`)."""
        carry, number = b"", 0
        overlong: bytes | None = None  # the first bytes of a line too long to hold, while the rest of it is skipped
        overlong_blank = False  # whether that line holds only spaces, tabs and CRs so far (then it is no line at all)
        for block in blocks:
            if overlong is not None:
                cut = block.find(b"\n")
                overlong_blank = overlong_blank and not block[: len(block) if cut < 0 else cut].strip(BLANK)
                if cut < 0:
                    continue
                number += 1
                if not overlong_blank:
                    yield self._batch([_special(number, LINE_TOO_LONG, overlong)])
                overlong, block = None, block[cut + 1 :]
            data = carry + block if carry else block
            cut = data.rfind(b"\n")
            if cut < 0:
                carry = data
            else:
                complete, carry = data[: cut + 1], data[cut + 1 :]
                yield from self._lines(complete, number)
                number += complete.count(b"\n")
            if len(carry) > MAX_LINE_BYTES + 1:  # (one more: the CR of a CRLF ending may be in it)
                overlong, overlong_blank, carry = carry[:KEPT_BYTES], not carry.strip(BLANK), b""
        if overlong is not None:
            if not overlong_blank:
                yield self._batch([_special(number + 1, LINE_TOO_LONG, overlong)])
        elif carry:
            yield from self._lines(carry + b"\n", number)

    def _lines(self, data: bytes, before: int) -> Iterator[pa.RecordBatch]:
        """The lines of a block of complete lines (each ending in a newline), numbered from `before + 1`."""
        if b"\r\n" in data:
            data = data.replace(b"\r\n", b"\n")
        ends = np.flatnonzero(np.frombuffer(data, np.uint8) == 10)
        starts = np.concatenate(([0], ends[:-1] + 1))
        lengths = ends - starts
        numbers = before + 1 + np.arange(len(ends))
        special: list[tuple[int, str, str, bytes]] = []
        skip = lengths == 0
        maybe_blank = np.flatnonzero(
            ~skip & np.isin(np.frombuffer(data, np.uint8)[np.minimum(starts, len(data) - 1)], [9, 13, 32])
        )
        for k in maybe_blank:
            skip[k] = not data[starts[k] : ends[k]].strip(BLANK)
        for k in np.flatnonzero((lengths > MAX_LINE_BYTES) & ~skip):
            special.append(_special(int(numbers[k]), LINE_TOO_LONG, data[starts[k] : starts[k] + KEPT_BYTES]))
            skip[k] = True
        if not data.isascii():
            for k in self._invalid_utf8(data, ends):
                if not skip[k]:
                    special.append(_special(int(numbers[k]), INVALID_UTF8, data[starts[k] : ends[k]]))
                    skip[k] = True
        # All lines over the block without its newlines (zero-copy), then the ones kept.
        text = data.replace(b"\n", b"")
        offsets = np.append(starts - np.arange(len(starts)), len(text)).astype(np.int32)  # blocks are far below 2 GiB
        lines = pa.Array.from_buffers(pa.binary(), len(starts), [None, pa.py_buffer(offsets), pa.py_buffer(text)])
        kept = np.flatnonzero(~skip)
        if len(kept) < len(starts):
            lines = lines.take(pa.array(kept))
        lines = lines.view(pa.string())
        if len(lines):
            yield self._judged(lines, numbers[kept])
        if special:
            yield self._batch(special)

    @staticmethod
    def _invalid_utf8(data: bytes, ends: np.ndarray) -> Iterator[int]:
        """Indexes of the lines holding bytes that are not UTF-8 (a sequence never spans a newline, an ASCII byte): the
        block is tried whole, then, if it fails, line by line (linear however many lines are bad)."""
        try:
            codecs.utf_8_decode(data, "strict", True)
            return
        except UnicodeDecodeError:
            pass
        view, start = memoryview(data), 0
        for k, end in enumerate(ends.tolist()):
            try:
                codecs.utf_8_decode(view[start:end], "strict", True)
            except UnicodeDecodeError:
                yield k
            start = end + 1

    def _judged(self, lines: pa.StringArray, numbers: np.ndarray) -> pa.RecordBatch:
        plain = pc.and_(
            pc.and_(pc.less_equal(pc.binary_length(lines), PLAIN_BYTES), pc.match_substring_regex(lines, PLAIN_OBJECT)),
            pc.invert(pc.match_substring_regex(lines, self.repeated)),
        )
        doubtful = np.flatnonzero(~plain.to_numpy(zero_copy_only=False))
        docs: pa.Array = pa.nulls(len(lines), pa.string())
        reasons: pa.Array = pa.nulls(len(lines), pa.string())
        if len(doubtful):
            doc_values: list[str | None] = [None] * len(lines)
            reason_values: list[str | None] = [None] * len(lines)
            for k, text in zip(doubtful, lines.take(pa.array(doubtful)).to_pylist(), strict=True):
                reason_values[k], doc_values[k] = judge(text, self.fields)
            docs, reasons = pa.array(doc_values, pa.string()), pa.array(reason_values, pa.string())
        return self._assembled(numbers, lines, docs, reasons, pa.nulls(len(lines), pa.binary()))

    def _batch(self, rows: list[tuple[int, str, str, bytes | None]]) -> pa.RecordBatch:
        """A batch of rows the reader made itself (line number, line, reason, raw bytes)."""
        numbers, lines, reasons, raw = (list(column) for column in zip(*rows, strict=True))
        return self._assembled(
            numbers,
            pa.array(lines, pa.string()),
            pa.nulls(len(rows), pa.string()),
            pa.array(reasons, pa.string()),
            pa.array(raw, pa.binary()),
        )

    def _assembled(
        self, numbers: np.ndarray | list[int], lines: pa.Array, docs: pa.Array, reasons: pa.Array, raw: pa.Array
    ) -> pa.RecordBatch:
        """A batch of `SCHEMA`: this file's day and name on every row."""
        n = len(lines)
        return pa.RecordBatch.from_arrays(
            [
                pa.repeat(pa.scalar(self.landing_date, pa.date32()), n),
                pa.repeat(pa.scalar(self.source_file, pa.string()), n),
                pa.array(numbers, pa.int64()),
                lines,
                docs,
                reasons,
                raw,
            ],
            schema=SCHEMA,
        )

    def unreadable(self, number: int, problem: str) -> pa.RecordBatch:
        return self._batch([(number, problem, UNREADABLE_FILE, None)])


@dataclass(frozen=True)
class FileRead:
    """What reading one landing file found: its lines counted apart from the reader, and its problem, if any."""

    landing_date: dt.date
    source_file: str
    lines: int
    problem: str | None


def file_batches(
    landing_date: dt.date, source_file: str, fields: tuple[str, ...], count: bool = True
) -> Generator[pa.RecordBatch, None, FileRead]:
    """The rows of one landing file as they are read (lines, and one `unreadable_file` row for bytes that are not gzip);
    returns, when `count`, its lines counted apart from the reader on the same decompressed bytes."""
    reader, counter = LineReader(landing_date, source_file, fields), LineCounter()

    def counting(blocks: Iterable[bytes]) -> Iterator[bytes]:
        for block in blocks:
            counter.feed(block)
            yield block

    last = 0
    with open_url(source_file) as f:
        inflated = Inflated(f.read)
        blocks = _without_mark(inflated)
        for batch in reader.batches(counting(blocks) if count else blocks):
            if len(batch):
                last = max(last, pc.max(batch.column("line_number")).as_py())
            yield batch
    lines = counter.total()
    if _has_unreadable_row(inflated.problem):
        yield reader.unreadable(last + 1, inflated.problem)
        lines += 1
    return FileRead(landing_date, source_file, lines, inflated.problem)


def write_parquet(files: list[tuple[dt.date, str]], fields: tuple[str, ...], path: str, threads: int) -> pa.Table:
    """Read landing files into one Parquet file of `SCHEMA` at `path` (a scratch file an engine scans), `threads` files
    at
    a time (decompression, NumPy and RE2 release the GIL), a few batches in memory at most; returns each file's count
    and problem (`COUNT_SCHEMA`)."""
    import pyarrow.parquet as pq

    handed: queue.Queue = queue.Queue(maxsize=4 * max(threads, 1))
    stopped = threading.Event()

    def hand(item: object) -> None:
        while not stopped.is_set():  # a reader whose writer has stopped must not wait forever
            try:
                return handed.put(item, timeout=0.5)
            except queue.Full:
                continue

    def produce(landing_date: dt.date, url: str) -> None:
        """Hand over the file's batches, then its `FileRead`, or the error that ended it: one last item a file."""
        try:
            batches = file_batches(landing_date, url, fields)
            while True:
                try:
                    hand(next(batches))
                except StopIteration as done:
                    return hand(done.value)
        except BaseException as error:
            hand(error)

    reads: list[FileRead] = []
    failure: BaseException | None = None
    pool = ThreadPoolExecutor(max_workers=max(threads, 1), thread_name_prefix="landed-lines")
    try:
        with pq.ParquetWriter(
            path, SCHEMA, compression="none"
        ) as writer:  # scratch, read once: compressing costs more than it saves
            for landing_date, url in files:
                pool.submit(produce, landing_date, url)
            ended = 0
            while ended < len(files):
                item = handed.get()
                if isinstance(item, pa.RecordBatch):
                    if failure is None:  # after a failure, batches are only drained
                        writer.write_batch(item)
                    continue
                ended += 1
                if isinstance(item, FileRead):
                    reads.append(item)
                else:
                    failure = failure or item
    finally:
        stopped.set()
        pool.shutdown(wait=True, cancel_futures=True)
    if failure is not None:
        raise failure
    return pa.Table.from_pylist(
        [
            {"landing_date": r.landing_date, "source_file": r.source_file, "lines": r.lines, "problem": r.problem}
            for r in reads
        ],
        schema=COUNT_SCHEMA,
    )


# --- in Spark's Python workers ---------------------------------------------------------------------------------------


def spark_lines(fields: tuple[str, ...]) -> Callable[[Iterable[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """A `mapInArrow` function from rows (landing_date, source_file) to the rows of `SPARK_SCHEMA`."""

    def read(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            for landing_date, source_file in zip(
                batch.column("landing_date").to_pylist(), batch.column("source_file").to_pylist(), strict=True
            ):
                yield from file_batches(landing_date, source_file, fields, count=False)

    return read


def spark_counts(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """A `mapInArrow` function from rows (landing_date, source_file) to each file's count and problem
    (`SPARK_COUNT_SCHEMA`)."""
    for batch in batches:
        days, files = batch.column("landing_date").to_pylist(), batch.column("source_file").to_pylist()
        counted = [count_file(f) for f in files]
        yield pa.RecordBatch.from_arrays(
            [
                pa.array(days, pa.date32()),
                pa.array(files, pa.string()),
                pa.array([c[0] for c in counted], pa.int64()),
                pa.array([c[1] for c in counted], pa.string()),
            ],
            schema=COUNT_SCHEMA,
        )

"""The landing-file reader alone: the line rules, the grammar (the corpus, and its fast path against the exact
parser under random input), and the count kept apart from it."""

import datetime as dt
import gzip
import json
import zlib
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet  # noqa: F401  (pa.parquet)
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tvtime_platform.transforms import landed_lines as ll
from tvtime_platform.transforms.app_events import FIELDS
from tvtime_platform_tests.json_corpus import GRAMMAR, REPEATS, byte_files, corpus_lines

DAY = dt.date(2024, 3, 1)
READER_REASONS = {"malformed_json", "invalid_utf8", "line_too_long", "unreadable_file"}


def read_file(path) -> tuple[list[dict], ll.FileRead]:
    """A file's rows in line order, and what reading it found."""
    batches, reading = [], ll.file_batches(DAY, str(path), FIELDS)
    while True:
        try:
            batches.append(next(reading))
        except StopIteration as done:
            return pa.Table.from_batches(batches, schema=ll.SCHEMA).sort_by("line_number").to_pylist(), done.value


def read_bytes(
    tmp_path, data: bytes, name: str = "part.jsonl.gz", compress=gzip.compress
) -> tuple[list[dict], ll.FileRead]:
    path = tmp_path / name
    path.write_bytes(compress(data))
    return read_file(path)


def reader_reason(expected: str | None) -> str | None:
    """What the reader says of a line whose final reason is `expected` (schema reasons are the engines' to give)."""
    return expected if expected in READER_REASONS or (expected or "").startswith("repeated_field:") else None


def test_the_corpus_gets_the_reader_verdicts_it_was_written_with(tmp_path):
    lines = corpus_lines()
    rows, read = read_bytes(tmp_path, "\n".join(text for text, _ in lines).encode() + b"\n")
    assert read.lines == len(rows) == len(lines) and read.problem is None
    wrong = [
        (text, reason, row["line_reason"])
        for (text, reason), row in zip(lines, rows, strict=True)
        if row["line_reason"] != reader_reason(reason)
    ]
    assert wrong == []
    assert [row["line"] for row in rows] == [text for text, _ in lines]  # kept as landed, whatever the verdict


def test_each_grammar_rule_has_accepted_or_refused_forms():
    rules = {case.rule for case in GRAMMAR}
    assert len(rules) >= 20 and len(GRAMMAR) > 150
    assert {reason for _, reason in REPEATS} >= {"repeated_field:user_id", "repeated_field:country", None}


def test_the_byte_cases_at_the_start_middle_and_end_of_files(tmp_path):
    for path, body in byte_files(tmp_path).items():
        rows, read = read_file(path)
        expected = [(text, reason) for text, reason in body if reason != "blank"]
        assert read.lines == len(rows) == len(expected), path.name
        for row, (text, reason) in zip(rows, expected, strict=True):
            assert row["line_reason"] == reader_reason(reason), (path.name, text[:80])
            if reason == "invalid_utf8":
                assert row["raw_bytes"] == text.removesuffix(b"\r") and row["line"] == text.decode(
                    "utf-8", "backslashreplace"
                )
            elif reason == "line_too_long":
                assert row["raw_bytes"] == text[: ll.KEPT_BYTES] and len(row["line"]) == ll.KEPT_BYTES
            else:
                assert row["raw_bytes"] is None and row["line"].encode() in (
                    text,
                    text.removesuffix(b"\r"),
                    text.removeprefix(b"\xef\xbb\xbf"),
                )


def test_line_numbers_count_blank_lines_and_crlf_endings(tmp_path):
    rows, read = read_bytes(tmp_path, b'{"a":1}\r\n\r\n  \n{"b":2}\r\n{"c":3}')
    assert [(r["line_number"], r["line"]) for r in rows] == [(1, '{"a":1}'), (4, '{"b":2}'), (5, '{"c":3}')]
    assert read.lines == 3


def test_cut_unreadable_and_multi_member_files(tmp_path):
    whole = gzip.compress(b'{"a":1}\n{"b":2}\n{"c":3}\n' * 2000)
    rows, read = read_bytes(tmp_path, whole[: len(whole) // 2], compress=lambda data: data)
    assert read.problem == ll.TRUNCATED and read.lines == len(rows) > 100
    assert all(r["line_reason"] is None for r in rows[:-1])  # every complete line; the cut one may be half a line

    rows, read = read_bytes(tmp_path, b"PK\x03\x04 a zip archive", compress=lambda data: data)
    assert read.problem.startswith("not gzip data") and read.lines == 1
    assert [(r["line_reason"], r["line_number"]) for r in rows] == [("unreadable_file", 1)]

    rows, read = read_bytes(
        tmp_path,
        gzip.compress(b'{"a":1}\n') + gzip.compress(b'{"b":2}') + b"junk after the members",
        compress=lambda data: data,
    )
    assert [(r["line"], r["line_reason"]) for r in rows][:2] == [('{"a":1}', None), ('{"b":2}', None)]
    assert rows[2]["line_reason"] == "unreadable_file" and "after 15 bytes" in rows[2]["line"] and read.lines == 3


def test_files_are_written_for_an_engine_with_their_counts_and_a_failing_file_fails_the_read(tmp_path):
    files = []
    for k in range(7):
        path = tmp_path / f"part-{k}.jsonl.gz"
        path.write_bytes(
            gzip.compress(b"".join(json.dumps({"event_id": f"{k}-{n}"}).encode() + b"\n" for n in range(5000)))
        )
        files.append((DAY, str(path)))
    counts = ll.write_parquet(files, FIELDS, str(tmp_path / "lines.parquet"), threads=2)
    assert sorted(counts.column("lines").to_pylist()) == [5000] * 7 and counts.column("problem").null_count == 7
    assert pa.parquet.read_table(tmp_path / "lines.parquet").num_rows == 35_000
    missing = [*files[:3], (DAY, str(tmp_path / "gone.jsonl.gz")), *files[3:]]
    with pytest.raises(
        FileNotFoundError
    ):  # a file listed but gone by the time it is read: the run fails, it is retried
        ll.write_parquet(missing, FIELDS, str(tmp_path / "again.parquet"), threads=2)


def test_a_small_file_inflating_enormously_is_read_in_bounded_blocks(tmp_path):
    line = json.dumps({"event_id": "x" * 100}).encode() + b"\n"
    compressed = zlib.compressobj(9, zlib.DEFLATED, 31)
    data = compressed.compress(line * 300_000) + compressed.flush()
    path = tmp_path / "bomb.jsonl.gz"
    path.write_bytes(data)
    with open(path, "rb") as f:
        sizes = [len(block) for block in ll.Inflated(f.read)]
    assert max(sizes) <= ll.BLOCK_BYTES and sum(sizes) == len(line) * 300_000
    assert read_file(path)[1].lines == 300_000


def test_rules_hold_across_block_boundaries(tmp_path):
    """Each gzip member decompresses to a block of its own, so a file of several members puts the boundaries exactly."""
    members = lambda *parts: b"".join(gzip.compress(part) for part in parts)  # noqa: E731
    good = b'{"event_id":"e"}'
    exactly = b'{"pad":"' + b"x" * (ll.MAX_LINE_BYTES - 10) + b'"}'
    assert len(exactly) == ll.MAX_LINE_BYTES
    cases = {
        "a byte-order mark split over three blocks": (
            members(b"\xef", b"\xbb", b"\xbf" + good + b"\n"),
            [(good.decode(), None)],
        ),
        "a CRLF split after a line of exactly 1 MiB": (
            members(exactly + b"\r", b"\n" + good + b"\n"),
            [(exactly.decode(), None), (good.decode(), None)],
        ),
        "a blank line over 1 MiB": (
            members(good + b"\n" + b" " * (ll.MAX_LINE_BYTES + 100), b"\t" * 50 + b"\n" + good),
            [(good.decode(), None), (good.decode(), None)],
        ),
        "a blank line over 1 MiB, held over blocks": (
            members(b" " * (3 * ll.BLOCK_BYTES), b"\r\n" + good + b"\n"),
            [(good.decode(), None)],
        ),
        "a character split between blocks": (members(b'{"e":"\xc3', b'\xa9"}\n'), [('{"e":"é"}', None)]),
        "a bad byte at a block's end": (
            members(b'{"e":1}\xff', b"\n" + good),
            [('{"e":1}\\xff', "invalid_utf8"), (good.decode(), None)],
        ),
    }
    for name, (data, expected) in cases.items():
        rows, read = read_bytes(tmp_path, data, compress=lambda d: d)
        assert [(r["line"], r["line_reason"]) for r in rows] == expected, name
        assert read.lines == len(expected), name


def test_many_lines_that_are_not_utf8_in_a_large_block(tmp_path):
    good = b'{"event_id":"e"}\n'
    rows, read = read_bytes(tmp_path, b"\xff\n" * 4000 + good * 200_000)
    assert read.lines == len(rows) == 204_000 and sum(r["line_reason"] == "invalid_utf8" for r in rows) == 4000


def test_an_endless_line_keeps_its_start_and_the_next_line(tmp_path):
    rows, read = read_bytes(tmp_path, b'{"pad":"' + b"y" * (3 * ll.BLOCK_BYTES) + b'"}\n{"after":1}\n')
    assert [(r["line_number"], r["line_reason"]) for r in rows] == [(1, "line_too_long"), (2, None)]
    assert rows[0]["raw_bytes"] == (b'{"pad":"' + b"y" * ll.KEPT_BYTES)[: ll.KEPT_BYTES] and read.lines == 2


# --- the fast path never decides otherwise than the exact parser --------------------------------------------------

JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
KEYS = st.sampled_from([*FIELDS, "extra", "x"]) | st.text(max_size=6)
TOKENS = st.sampled_from(
    [
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        '"',
        "\\",
        "\\u",
        "d800",
        "0",
        "01",
        "1.",
        "-",
        "e5",
        " ",
        "\t",
        "\r",
        "true",
        "nul",
        "NaN",
        '"user_id"',
        '"ts"',
        "'",
        "/*",
        "\x00",
        "\x1f",
        "é",
        "\ud83d\ude00",
    ]
)


# Number literals as clients write them: any length, fractions and exponents.
NUMBERS = st.from_regex(r"-?(0|[1-9][0-9]{0,25})(\.[0-9]{1,3})?([eE][+-]?[0-9]{1,3})?", fullmatch=True)
STRINGS = st.from_regex(r'"([a-z]|\\["\\/bfnrt]|\\u00[0-7][0-9a-f]|\\ud83d\\ude00)*"', fullmatch=True)


def object_lines() -> st.SearchStrategy[str]:
    """Objects (with repeated keys at times) as JSON text, some of them broken by a random edit."""

    def objects(values: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        members = st.lists(st.tuples(KEYS, values), max_size=6)
        return members.map(
            lambda pairs: "{" + ",".join(f"{json.dumps(k, ensure_ascii=False)}:{v}" for k, v in pairs) + "}"
        )

    flat = st.integers(-(10**25), 10**25).map(str) | STRINGS | st.sampled_from(["true", "false", "null", "-0"])
    text = objects(flat) | objects(JSON_VALUES.map(lambda v: json.dumps(v, ensure_ascii=False)) | NUMBERS | STRINGS)
    edited = st.tuples(text, st.integers(0, 200), TOKENS, st.booleans()).map(
        lambda t: t[0][: t[1]] + t[2] + t[0][t[1] + (1 if t[3] else 0) :]
    )
    return text | edited | st.lists(TOKENS, max_size=12).map("".join)


def values(text: str) -> dict:
    """The named fields of a JSON object as an engine reads them: numbers by their exact value."""
    return {
        k: v for k, v in json.loads(text, object_pairs_hook=list, parse_float=Decimal, parse_int=Decimal) if k in FIELDS
    }


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(object_lines(), min_size=1, max_size=20))
def test_the_fast_path_agrees_with_the_exact_parser(tmp_path_factory, lines):
    lines = [line.replace("\n", " ") for line in lines]
    path = tmp_path_factory.mktemp("fast") / "part.jsonl.gz"
    path.write_bytes(gzip.compress("\n".join(lines).encode("utf-8", "surrogatepass")))
    rows, read = read_file(path)
    kept = [line for line in lines if line.strip(" \t\r")]
    assert read.lines == len(rows) == len(kept)
    for line, row in zip(kept, rows, strict=True):
        try:
            line.encode("utf-8")
        except UnicodeEncodeError:
            assert row["line_reason"] == "invalid_utf8"
            continue
        reason, doc = ll.judge(line, FIELDS)
        assert row["line_reason"] == reason, line
        if reason is None and row["doc"] is None:  # vouched for as it stands: it must mean what its plain form means
            assert values(row["line"]) == values(doc), line
        elif reason is None:
            assert row["doc"] == doc

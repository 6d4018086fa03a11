"""Landing days no generator shaped, through both engines: the RFC 8259 corpus, bytes that are not UTF-8, odd file
names, cut and foreign files; then random files (hypothesis). Each engine must keep exactly the events expected,
quarantine every other line with its reason, and leave the same rows as the other."""

import gzip
import json
import zlib
from pathlib import Path

import dagster as dg
import duckdb
import fsspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tvtime_platform.resources.deployment import local_resources
from tvtime_platform.resources.landing import LandingZone
from tvtime_platform.resources.spark import LocalSpark
from tvtime_platform.transforms.landed_lines import MAX_LINE_BYTES
from tvtime_platform_tests.emulators import new_bucket
from tvtime_platform_tests.json_corpus import GOOD, byte_files, corpus_lines
from tvtime_platform_tests.support import ASSETS, START, lake_scan

DAY = START.isoformat()
ENGINES = ("duckdb", "spark")
# File names the landing zone may hold: SQL quotes and comments, glob characters, percent escapes, spaces and more;
# the last one is the probe that once made a query read the process environment.
ODD_NAMES = [
    "it's a [test] file %1.jsonl.gz",
    "*?[!a-z]{x,y}**.jsonl.gz",
    "sp ace\tand é 中 😀.jsonl.gz",
    'back\\slash"quote".jsonl.gz',
    "%2F%00..%25.jsonl.gz",
    "-- comment; DROP TABLE x.jsonl.gz",
    "*'],columns={'line':'VARCHAR'},delim=chr(30),quote='',header=0)UNION ALL SELECT DATE '2024-03-01','X',"
    "content FROM "
    "read_text(E'\\x2fproc\\x2fself\\x2fenviron'),read_csv(E'\\x2fetc\\x2fhostname',columns={'line':'VARCHAR'},header=0,--.jsonl.gz",
]


def land_odd_names_on_s3(bucket: str) -> tuple[str, set[str]]:
    """The odd-named files in a landing zone on S3, written under their exact keys; its URL and the event ids they
    hold."""
    s3 = fsspec.filesystem("s3", use_listings_cache=False)
    for k, name in enumerate(ODD_NAMES):
        s3.pipe(
            f"{bucket}/landing/dt={DAY}/hour=12/{name}",
            gzip.compress(good(f"odd-{k}-a") + b"\n" + good(f"odd-{k}-b") + b"\n"),
        )
    return f"s3://{bucket}/landing", {f"odd-{k}-{x}" for k in range(len(ODD_NAMES)) for x in "ab"}


def gzip_lines(path: Path, lines: list[bytes], newline_at_end: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(b"\n".join(lines) + (b"\n" if newline_at_end else b"")))
    return path


def good(event_id: str) -> bytes:
    return GOOD.replace(b"{id}", event_id.encode())


def build_day(landing: Path) -> tuple[set[str], set[tuple[str, int, str]]]:
    """The day's landing files; the event ids to keep and the (file, line number, reason) to quarantine."""
    hour = lambda h: landing / f"dt={DAY}" / f"hour={h:02d}"  # noqa: E731
    kept: set[str] = set()
    refused: set[tuple[str, int, str]] = set()

    def expect(path: Path, lines: list[tuple[bytes, str | None]]) -> None:
        number = 0
        for text, reason in lines:
            number += 1
            if reason == "blank":
                continue
            if reason is None:
                kept.add(json.loads(text.removeprefix(b"\xef\xbb\xbf"))["event_id"])
            else:
                refused.add((str(path), number, reason))

    corpus = [(text.encode(), reason) for text, reason in corpus_lines()]
    expect(gzip_lines(hour(10) / "part-corpus.jsonl.gz", [t for t, _ in corpus]), corpus)
    hour(11).mkdir(parents=True)
    for path, body in byte_files(hour(11)).items():
        expect(path, body)
    for k, name in enumerate(ODD_NAMES):
        body = [(good(f"odd-{k}-a"), None), (good(f"odd-{k}-b"), None)]
        expect(gzip_lines(hour(12) / name, [t for t, _ in body]), body)

    # An interrupted upload: what decompresses is kept, the line cut in two is malformed.
    whole = gzip.compress(b"\n".join(good(f"cut-{n}") for n in range(3000)) + b"\n")
    cut = hour(13) / "part-cut.jsonl.gz"
    cut.parent.mkdir(parents=True)
    cut.write_bytes(whole[: len(whole) * 2 // 3])
    salvaged = zlib.decompressobj(31).decompress(cut.read_bytes())
    *complete, partial = salvaged.split(b"\n")
    expect(cut, [(line, None) for line in complete] + ([(partial, "malformed_json")] if partial else []))
    # Not gzip at all; gzip followed by bytes that are not; two gzip members.
    foreign = hour(13) / "part-zip.jsonl.gz"
    foreign.write_bytes(b"PK\x03\x04 a zip archive, not gzip")
    refused.add((str(foreign), 1, "unreadable_file"))
    trailing = hour(13) / "part-trailing.jsonl.gz"
    trailing.write_bytes(gzip.compress(good("trail-a") + b"\n") + b"\x00\x01 junk")
    kept.add("trail-a")
    refused.add((str(trailing), 2, "unreadable_file"))
    members = hour(13) / "part-members.jsonl.gz"
    members.write_bytes(gzip.compress(good("member-a") + b"\n") + gzip.compress(good("member-b")))
    kept |= {"member-a", "member-b"}
    (hour(13) / "part-empty.jsonl.gz").write_bytes(b"")

    # Block boundaries placed exactly: each gzip member decompresses to a block of its own.
    members = lambda *parts: b"".join(gzip.compress(part) for part in parts)  # noqa: E731
    hour(14).mkdir(parents=True)
    (hour(14) / "part-mark-split.jsonl.gz").write_bytes(members(b"\xef", b"\xbb", b"\xbf" + good("split-mark") + b"\n"))
    padded = good("one-mib")[:-1] + b',"pad":"'
    padded += b"x" * (MAX_LINE_BYTES - len(padded) - 2) + b'"}'
    (hour(14) / "part-crlf-split.jsonl.gz").write_bytes(members(padded + b"\r", b"\n" + good("after-one-mib") + b"\n"))
    (hour(14) / "part-long-blank.jsonl.gz").write_bytes(
        members(good("before-blank") + b"\n" + b" " * (MAX_LINE_BYTES + 9), b"\t\r\n" + good("after-blank"))
    )
    accented = good("split-é")
    cut = accented.index(b"\xc3") + 1
    (hour(14) / "part-char-split.jsonl.gz").write_bytes(members(accented[:cut], accented[cut:]))
    kept |= {"split-mark", "one-mib", "after-one-mib", "before-blank", "after-blank", "split-é"}
    return kept, refused


def run_day(data_dir: Path, engine: str) -> dg.ExecuteInProcessResult:
    return materialize_events(
        local_resources(data_dir, engine=engine, spark=LocalSpark(master="local[2]", driver_memory="1g"))
    )


def materialize_events(resources: dict) -> dg.ExecuteInProcessResult:
    """The day's app_events and quarantined_events, in a fresh instance."""
    return dg.materialize(
        ASSETS,
        selection=["app_events", "quarantined_events"],
        partition_key=DAY,
        resources=resources,
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def lake_table(data_dir: Path, table: str) -> str:
    """A table of the day with file names relative to the landing zone (each engine has its own data folder)."""
    return (
        (
            f"(SELECT * REPLACE (replace(source_file, '{data_dir}/', '') AS source_file) "
            f"FROM {lake_scan(data_dir / 'lake', table, DAY)})"
        )
        if table == "quarantined_events"
        else f"{lake_scan(data_dir / 'lake', table, DAY)}"
    )


def assert_engines_agree(dirs: dict[str, Path]) -> None:
    con = duckdb.connect()
    for table in ("app_events", "quarantined_events"):
        a, b = (lake_table(dirs[engine], table) for engine in ENGINES)
        assert (
            con.execute(f"DESCRIBE SELECT * FROM {a}").fetchall()
            == con.execute(f"DESCRIBE SELECT * FROM {b}").fetchall()
        ), table
        for x, y in ((a, b), (b, a)):
            extra = con.execute(f"SELECT * FROM {x} EXCEPT ALL SELECT * FROM {y} LIMIT 5").fetchall()
            assert extra == [], (table, extra)


@pytest.mark.slow
def test_both_engines_keep_exactly_the_valid_events_of_a_day_no_generator_shaped(tmp_path):
    dirs = {engine: tmp_path / engine for engine in ENGINES}
    for engine, folder in dirs.items():
        kept, refused = build_day(folder / "landing")
        result = run_day(folder, engine)
        assert result.success, engine
        [balance] = [e for e in result.get_asset_check_evaluations() if e.check_name == "every_line_accounted_for"]
        assert balance.passed and balance.metadata["rows_written"].value == len(kept) + len(refused), engine
        found = duckdb.sql(f"SELECT event_id FROM {lake_scan(folder / 'lake', 'app_events', DAY)}").fetchall()
        assert sorted(r[0] for r in found) == sorted(kept), engine
        quarantined = duckdb.sql(
            f"SELECT source_file, line_number, reason FROM {lake_scan(folder / 'lake', 'quarantined_events', DAY)}"
        ).fetchall()
        assert len(quarantined) == len(refused) and set(quarantined) == refused, (engine, set(quarantined) ^ refused)
        metadata = result.get_asset_materialization_events()[0].materialization.metadata
        assert metadata["unreadable_files"].value == 2 and metadata["truncated_files"].value == 1, engine
        assert metadata["landed_lines"].value == len(kept) + len(refused), engine
    assert_engines_agree(dirs)
    # The lines that are not UTF-8 keep their exact bytes, and a too long line its first kilobyte, on both engines.
    raw = duckdb.sql(
        f"SELECT reason, raw_bytes FROM {lake_table(dirs['spark'], 'quarantined_events')} "
        f"WHERE reason IN ('invalid_utf8', 'line_too_long')"
    ).fetchall()
    assert {r[0] for r in raw} == {"invalid_utf8", "line_too_long"} and all(r[1] for r in raw)
    assert any(r[1].startswith(b"\xff{") for r in raw) and all(
        len(r[1]) == 1024 for r in raw if r[0] == "line_too_long"
    )


@pytest.mark.slow
def test_odd_file_names_on_s3_are_read_like_any_other(s3_endpoint, tmp_path):
    url, expected = land_odd_names_on_s3(new_bucket())  # (Spark reads them on S3 in resources/test_emr.py)
    resources = {**local_resources(tmp_path), "landing": LandingZone(url=url)}
    result = dg.materialize(
        ASSETS,
        selection=["app_events", "quarantined_events"],
        partition_key=DAY,
        resources=resources,
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success and result.get_asset_check_evaluations()[0].passed
    events = duckdb.sql(f"SELECT event_id FROM {lake_scan(tmp_path / 'lake', 'app_events', DAY)}").fetchall()
    assert {r[0] for r in events} == expected and len(events) == len(expected)
    assert duckdb.sql(f"SELECT count(*) FROM {lake_scan(tmp_path / 'lake', 'quarantined_events', DAY)}").fetchall() == [
        (0,)
    ]


# --- random files ------------------------------------------------------------------------------------------------

LINE_PIECES = st.sampled_from(
    [
        b"{",
        b"}",
        b"[",
        b"]",
        b",",
        b":",
        b'"',
        b"\\",
        b"0",
        b"-1",
        b"1e400",
        b"NaN",
        b" ",
        b"\t",
        b"\r",
        b"\x00",
        b"\xff",
        b"\xc3",
        b"\xa9",
        b"\xef\xbb\xbf",
        b'"user_id"',
        b'"ts"',
        b"true",
        b"\r\n",
        b"\n",
    ]
)
RANDOM_LINES = st.one_of(
    st.binary(max_size=60),
    st.lists(LINE_PIECES, max_size=15).map(b"".join),
    st.integers(0, 10**6).map(lambda n: good(f"r{n}")),  # valid events (the same id twice is a retry)
    st.tuples(
        st.integers(0, 10**6),
        st.sampled_from(
            [
                '"user_id":7.0',
                '"user_id":-0',
                '"x":{"a":1,"a":2}',
                '"rating":4',
                '"country":"U\\u0053"',
                '"ts":"2024-03-01T23:59:59.999999-01:00"',
            ]
        ),
    ).map(lambda t: good(f"v{t[0]}")[:-1] + b"," + t[1].encode() + b"}"),
)
RANDOM_FILES = st.lists(
    st.tuples(st.lists(RANDOM_LINES, max_size=30), st.booleans(), st.sampled_from(["plain", "cut", "junk"])),
    min_size=1,
    max_size=6,
)


def write_random_day(landing: Path, files: list) -> None:
    for k, (lines, newline_at_end, damage) in enumerate(files):
        path = gzip_lines(landing / f"dt={DAY}" / f"hour={k % 3:02d}" / f"part-{k}.jsonl.gz", lines, newline_at_end)
        if damage == "cut" and path.stat().st_size > 30:
            path.write_bytes(path.read_bytes()[:-7])
        elif damage == "junk":
            path.write_bytes(path.read_bytes() + b"junk")


def non_blank_lines(landing: Path) -> int:
    """Counted here with Python's own gzip, apart from the platform: lines holding more than spaces, tabs and CRs."""
    total = 0
    for path in landing.rglob("*.jsonl.gz"):
        decompressor, data, blob = zlib.decompressobj(31), b"", path.read_bytes()
        try:
            while blob:
                data += decompressor.decompress(blob)
                blob = decompressor.unused_data
                if blob:
                    decompressor = zlib.decompressobj(31)
        except zlib.error:
            total += 1  # the unreadable rest of the file is one row
        data = data.removeprefix(b"\xef\xbb\xbf")
        total += sum(1 for line in data.split(b"\n") if line.strip(b" \t\r"))
    return total


@pytest.mark.slow
@settings(
    max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(files=RANDOM_FILES)
def test_random_files_are_accounted_for_exactly_and_alike_on_both_engines(tmp_path_factory, files):
    root = tmp_path_factory.mktemp("random")
    dirs = {engine: root / engine for engine in ENGINES}
    for engine, folder in dirs.items():
        write_random_day(folder / "landing", files)
        result = run_day(folder, engine)
        assert result.success, engine
        written = sum(
            duckdb.sql(f"SELECT count(*) FROM {lake_scan(folder / 'lake', t, DAY)}").fetchall()[0][0]
            for t in ("app_events", "quarantined_events")
        )
        assert written == non_blank_lines(folder / "landing"), engine
        [balance] = [e for e in result.get_asset_check_evaluations() if e.check_name == "every_line_accounted_for"]
        assert balance.passed, engine
    assert_engines_agree(dirs)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(files=RANDOM_FILES)
def test_random_files_are_accounted_for_exactly_on_duckdb(tmp_path_factory, files):
    folder = tmp_path_factory.mktemp("random-duckdb")
    write_random_day(folder / "landing", files)
    result = run_day(folder, "duckdb")
    assert result.success
    written = sum(
        duckdb.sql(f"SELECT count(*) FROM {lake_scan(folder / 'lake', t, DAY)}").fetchall()[0][0]
        for t in ("app_events", "quarantined_events")
    )
    assert written == non_blank_lines(folder / "landing")

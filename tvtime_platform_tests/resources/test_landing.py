"""The landing zone resource: gzip completeness and day fingerprints."""

import gzip

from tvtime_platform.resources.landing import TRUNCATED, LandingZone, gzip_problem, salvage


def test_gzip_problems(tmp_path):
    multi = tmp_path / "multi.jsonl.gz"
    multi.write_bytes(gzip.compress(b'{"a": 1}\n') + gzip.compress(b'{"a": 2}\n'))  # two members: valid gzip
    cut = tmp_path / "cut.jsonl.gz"
    whole = "".join(f'{{"a": {i}}}\n' for i in range(5000)).encode()
    cut.write_bytes(gzip.compress(whole)[:-30])
    junk = tmp_path / "junk.jsonl.gz"
    junk.write_bytes(b"not gzip at all")
    assert gzip_problem(str(multi)) is None
    assert gzip_problem(str(cut)) == TRUNCATED
    assert gzip_problem(str(junk)).startswith("not gzip data")
    recovered = tmp_path / "recovered.jsonl"
    salvage(str(cut), str(recovered))
    got = recovered.read_bytes()
    assert len(got) > len(whole) // 2 and whole.startswith(got)  # all that arrived, in order; the rest was never uploaded


def test_fingerprints_change_with_the_files_of_a_day(tmp_path):
    hour = tmp_path / "dt=2024-03-01" / "hour=10"
    hour.mkdir(parents=True)
    (hour / "a.jsonl.gz").write_bytes(gzip.compress(b"x\n"))
    zone = LandingZone(url=str(tmp_path))
    before = zone.landed_days()
    (hour / "b.jsonl.gz").write_bytes(gzip.compress(b"y\n"))
    (hour / "ignored.tmp").write_bytes(b"partial upload")
    after = zone.landed_days()
    assert before.keys() == after.keys() == {"2024-03-01"} and before != after
    assert zone.partitions_reading("2024-03-01") == ["2024-03-01", "2024-02-29"]

"""The landing zone resource: day fingerprints."""

import gzip

from tvtime_platform.resources.landing import LandingZone


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

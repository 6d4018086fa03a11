"""The landing sensor on an S3 prefix (moto's server): listings past one page, changed days only, the cursor across
restarts."""

import datetime
import gzip
import json

import fsspec
import pytest

from tvtime_platform.resources.landing import LandingZone
from tvtime_platform_tests.emulators import new_bucket
from tvtime_platform_tests.support import evaluate_landing_sensor as evaluate
from tvtime_platform_tests.support import requested

pytestmark = pytest.mark.slow
PAGE = 1000  # S3 lists at most this many keys per request


def body(*event_ids: str) -> bytes:
    return gzip.compress("".join(json.dumps({"event_id": e}) + "\n" for e in event_ids).encode())


def test_the_sensor_follows_an_s3_prefix_past_one_listing_page(s3_endpoint):
    s3 = fsspec.filesystem("s3", use_listings_cache=False)
    landing = f"s3://{new_bucket()}/landing"
    root = landing.removeprefix("s3://")
    many = {f"{root}/dt=2024-03-01/hour={i % 24:02d}/part-{i:04d}.jsonl.gz": body(f"e{i}") for i in range(PAGE + 50)}
    s3.pipe(
        many
        | {
            f"{root}/dt=2024-03-02/hour=03/part-0.jsonl.gz": body("x"),
            f"{root}/dt=2024-03-02/hour=03/notes.txt": b"ignored",
        }
    )
    zone = LandingZone(url=landing)
    assert len(zone.event_files(datetime.date(2024, 3, 1))) == PAGE + 50

    first = evaluate(landing)
    assert requested(first) == [("ingest_events", "2024-03-01"), ("ingest_events", "2024-03-02")]
    # The cursor is all a restarted sensor has: given it back, nothing is requested again.
    assert requested(evaluate(landing, first.cursor)) == []

    # The last key in listing order changes: only a complete, paginated listing can notice.
    last = sorted(many)[-1]
    s3.pipe_file(last, body("e-replaced", "e-more"))
    changed = evaluate(landing, first.cursor)
    assert requested(changed) == [("ingest_events", "2024-03-01")]
    assert json.loads(changed.cursor)["2024-03-02"] == json.loads(first.cursor)["2024-03-02"]

"""The landing sensor on an S3 prefix (moto's server): listings past one page, changed days only, the cursor across
restarts."""

import datetime
import gzip
import json

import fsspec
import pytest

from tvtime_platform.resources.landing import LandingZone
from tvtime_platform_tests.emulators import new_bucket
from tvtime_platform_tests.support import LANDING_TODAY, requested, requests_to_the_store
from tvtime_platform_tests.support import evaluate_landing_sensor as evaluate

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


def test_a_steady_tick_sends_the_same_requests_whatever_the_closed_days_hold(s3_endpoint):
    """On S3 a tick lists the open days' prefixes only: closed days of more files than a listing page add no request
    (a listing of the whole zone would need two pages)."""
    s3 = fsspec.filesystem("s3", use_listings_cache=False)  # the instance the landing zone's URL resolves to
    sent_by_history = []
    for closed in (0, 11):
        landing = f"s3://{new_bucket()}/landing"
        root = landing.removeprefix("s3://")
        days = [LANDING_TODAY - datetime.timedelta(days=k) for k in range(3 + closed)]
        files = {
            f"{root}/dt={day}/hour=01/part-{n}.jsonl.gz": body(f"{day}-{n}")
            for k, day in enumerate(days)
            for n in range(2 if k < 3 else 100)  # 1,100 files in the closed days
        }
        s3.pipe(files)
        cursor = evaluate(landing).cursor
        sent = requests_to_the_store(s3)
        assert requested(evaluate(landing, cursor)) == []
        sent_by_history.append(sorted(operation for operation, _ in sent))
    assert sent_by_history[0] == sent_by_history[1] and sent_by_history[0]

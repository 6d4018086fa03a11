"""The landing sensor with a queue of the bucket's S3 event notifications (moto's server sends them as S3 does): a tick
lists only the days messages name, closed days included; a message read twice, or after a lost cursor, runs nothing
again; a lost message is found by the reconciliation, and a queue that cannot be read falls back to listing."""

import datetime
import gzip
import json
import socket

import boto3
import dagster as dg
import fsspec
import pytest

from tvtime_platform.defs.ingestion.landing_sensor import RECEIVED
from tvtime_platform_tests.emulators import new_bucket
from tvtime_platform_tests.support import (
    LANDING_TODAY,
    notifying_queue,
    record_runs,
    requested,
    requests_to_the_store,
)
from tvtime_platform_tests.support import evaluate_landing_sensor as evaluate

pytestmark = pytest.mark.slow
OPEN, CLOSED = "2024-03-03", "2024-02-10"
HISTORY = [(LANDING_TODAY - datetime.timedelta(days=k)).isoformat() for k in range(40)]  # 2024-01-24 to 2024-03-03


def body(*event_ids: str) -> bytes:
    return gzip.compress("".join(json.dumps({"event_id": e}) + "\n" for e in event_ids).encode())


def landed(root: str, day: str, name: str) -> str:
    return f"{root}/dt={day}/hour=07/{name}"


def waiting(queue_url: str) -> int:
    """Messages in the queue, visible or not."""
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    counts = boto3.client("sqs").get_queue_attributes(QueueUrl=queue_url, AttributeNames=names)["Attributes"]
    return sum(int(counts[name]) for name in names)


@pytest.fixture
def zone(s3_endpoint):
    """A landing prefix holding 40 days run by earlier ticks (before its queue was configured), its queue, and the
    instance holding those runs."""
    s3 = fsspec.filesystem("s3", use_listings_cache=False)
    landing = f"s3://{new_bucket()}/landing"
    root = landing.removeprefix("s3://")
    s3.pipe({landed(root, day, "part-0.jsonl.gz"): body(day) for day in HISTORY})
    instance = dg.DagsterInstance.ephemeral()
    record_runs(instance, evaluate(landing, instance=instance).run_requests)  # the open days, as listed
    record_runs(instance, evaluate(landing, instance=instance, sensor="landing_reconciliation").run_requests)
    return s3, landing, root, notifying_queue(landing), instance


def test_a_tick_lists_only_the_days_messages_name_and_deletes_them_a_tick_later(zone):
    s3, landing, root, queue, instance = zone
    assert requested(evaluate(landing, instance=instance, queue_url=queue)) == []  # no message: nothing listed

    s3.pipe({landed(root, OPEN, "part-1.jsonl.gz"): body("new"), landed(root, CLOSED, "late.jsonl.gz"): body("late")})
    sent = requests_to_the_store(s3)
    first = evaluate(landing, instance=instance, queue_url=queue)
    assert requested(first) == [("ingest_events", CLOSED), ("ingest_events", OPEN)]
    # The named days, and the days their partitions read late events from (for their run keys); and the catalog.
    listed = sorted(prefix for operation, prefix in sent if operation == "ListObjectsV2")
    assert listed == ["landing/catalog/"] + [f"landing/dt={day}/" for day in (CLOSED, "2024-02-11", OPEN, "2024-03-04")]
    assert len(json.loads(first.cursor)[RECEIVED]) == 2 and waiting(queue) == 2  # kept until the tick is stored

    record_runs(instance, first.run_requests)
    second = evaluate(landing, first.cursor, instance, queue_url=queue)
    assert requested(second) == [] and json.loads(second.cursor)[RECEIVED] == []
    assert waiting(queue) == 0


def test_a_message_read_again_after_a_lost_cursor_runs_nothing_twice(zone):
    s3, landing, root, queue, instance = zone
    s3.pipe_file(landed(root, CLOSED, "late.jsonl.gz"), body("late"))
    first = evaluate(landing, instance=instance, queue_url=queue)
    assert requested(first) == [("ingest_events", CLOSED)]
    record_runs(instance, first.run_requests)

    # The tick's cursor is lost: its messages come back once they are visible again (here at once).
    sqs = boto3.client("sqs")
    for receipt in json.loads(first.cursor)[RECEIVED]:
        sqs.change_message_visibility(QueueUrl=queue, ReceiptHandle=receipt, VisibilityTimeout=0)
    again = evaluate(landing, None, instance, queue_url=queue)
    assert len(json.loads(again.cursor)[RECEIVED]) == 1
    assert requested(again) == []

    # A file removed from a day that keeps others is a change too.
    s3.pipe_file(landed(root, CLOSED, "late-2.jsonl.gz"), body("late-2"))
    added = evaluate(landing, again.cursor, instance, queue_url=queue)
    record_runs(instance, added.run_requests)
    s3.rm_file(landed(root, CLOSED, "late.jsonl.gz"))
    assert requested(evaluate(landing, added.cursor, instance, queue_url=queue)) == [("ingest_events", CLOSED)]


def test_a_lost_message_is_found_by_the_reconciliation_on_an_open_day_too(zone):
    s3, landing, root, queue, instance = zone
    reconciled = evaluate(landing, instance=instance, sensor="landing_reconciliation", queue_url=queue)
    assert requested(reconciled) == []
    s3.pipe_file(landed(root, OPEN, "part-1.jsonl.gz"), body("new"))
    boto3.client("sqs").purge_queue(QueueUrl=queue)  # its message lost
    assert requested(evaluate(landing, instance=instance, queue_url=queue)) == []
    found = evaluate(landing, reconciled.cursor, instance, sensor="landing_reconciliation", queue_url=queue)
    assert requested(found) == [("ingest_events", OPEN)]


def test_messages_that_are_not_s3_events_are_dropped_with_a_warning(zone, capfd):
    s3, landing, root, queue, instance = zone
    sqs = boto3.client("sqs")
    for text in ("not json", json.dumps({"Records": "none"}), json.dumps([1, 2])):
        sqs.send_message(QueueUrl=queue, MessageBody=text)
    s3.pipe_file(f"{root}/dt=2024-3-4/hour=07/odd.jsonl.gz", body("odd"))  # a folder that is no day
    s3.pipe_file(landed(root, OPEN, "part-1.jsonl.gz"), body("new"))
    tick = evaluate(landing, instance=instance, queue_url=queue)
    assert requested(tick) == [("ingest_events", OPEN)]
    err = capfd.readouterr().err
    assert err.count("not an S3 event notification") == 2 and "not JSON" in err
    assert "dt=2024-3-4 is not a day" in err
    evaluate(landing, tick.cursor, instance, queue_url=queue)
    assert waiting(queue) == 0  # dropped, not read again tick after tick


def test_a_queue_that_cannot_be_read_is_said_and_the_open_days_are_listed(zone, capfd):
    s3, landing, root, queue, instance = zone
    s3.pipe({landed(root, OPEN, "part-1.jsonl.gz"): body("new"), landed(root, CLOSED, "late.jsonl.gz"): body("late")})
    boto3.client("sqs").delete_queue(QueueUrl=queue)
    tick = evaluate(landing, json.dumps({RECEIVED: ["a-receipt"]}), instance, queue_url=queue)
    assert requested(tick) == [("ingest_events", OPEN)]  # the closed day waits for the reconciliation
    err = capfd.readouterr().err
    assert f"the landing queue {queue} cannot be read" in err and "listing the open landing days instead" in err
    assert "1 landing queue message(s) not deleted" in err


def test_a_day_read_by_the_day_before_s_run_is_still_run_when_its_own_message_comes(zone):
    """The run of the day before lists today for its late events (its run key holds today's files): only today's own
    run ingests today's events, so today's message, arriving after, still runs today."""
    s3, landing, root, queue, instance = zone
    sqs = boto3.client("sqs")
    s3.pipe_file(landed(root, OPEN, "new.jsonl.gz"), body("today-new"))
    held = sqs.receive_message(QueueUrl=queue, VisibilityTimeout=900)["Messages"]  # its message, delivered late
    s3.pipe_file(landed(root, "2024-03-02", "late.jsonl.gz"), body("yesterday-late"))
    yesterday = evaluate(landing, instance=instance, queue_url=queue)
    assert requested(yesterday) == [("ingest_events", "2024-03-02")]
    record_runs(instance, yesterday.run_requests)
    sqs.change_message_visibility(QueueUrl=queue, ReceiptHandle=held[0]["ReceiptHandle"], VisibilityTimeout=0)
    assert requested(evaluate(landing, yesterday.cursor, instance, queue_url=queue)) == [("ingest_events", OPEN)]
    reconciled = evaluate(landing, None, instance, sensor="landing_reconciliation", queue_url=queue)
    assert requested(reconciled) == [("ingest_events", OPEN)]  # the same, had the message been lost


def test_a_message_that_cannot_be_read_or_names_no_partition_fails_no_tick(zone, capfd):
    s3, landing, root, queue, instance = zone
    sqs = boto3.client("sqs")
    sqs.send_message(QueueUrl=queue, MessageBody="[" * 100_000)  # past any parser's recursion
    for name in ("0001-01-01", "20240303", "2024-W09-7", "1999-12-31"):  # not days, or days before the partitions
        s3.pipe_file(landed(root, name, "odd.jsonl.gz"), body(name))
    s3.pipe_file(landed(root, OPEN, "part-1.jsonl.gz"), body("new"))
    tick = evaluate(landing, instance=instance, queue_url=queue)
    assert requested(tick) == [("ingest_events", OPEN)]
    err = capfd.readouterr().err
    assert "Landing queue messages that are not S3 events" in err
    assert all(f"dt={name} is not a day partition" in err for name in ("0001-01-01", "20240303", "1999-12-31"))
    evaluate(landing, tick.cursor, instance, queue_url=queue)
    assert waiting(queue) == 0


def test_a_queue_that_never_answers_falls_back_to_listing_within_the_tick(zone, monkeypatch, capfd):
    """A queue endpoint that accepts connections and says nothing: the receive gives up after a few seconds (not
    botocore's minutes), and the tick lists the open days."""
    s3, landing, root, _, instance = zone
    with socket.create_server(("127.0.0.1", 0)) as silent:
        port = silent.getsockname()[1]
        monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", f"http://127.0.0.1:{port}")
        s3.pipe_file(landed(root, OPEN, "part-1.jsonl.gz"), body("new"))
        tick = evaluate(landing, instance=instance, queue_url=f"http://127.0.0.1:{port}/123456789012/silent")
    assert requested(tick) == [("ingest_events", OPEN)]
    assert "listing the open landing days instead" in capfd.readouterr().err

"""The landing zone's S3 event notifications, drained from an SQS queue: which landing days changed, without a listing.

The landing bucket sends `s3:ObjectCreated:*` and `s3:ObjectRemoved:*` of its landing prefix to a queue
(docs/operations.md shows the configuration), directly, through SNS, or through EventBridge. `landing_sensor` drains it
each tick and lists only the days the messages name. A message is deleted by the *next* tick, once the tick that read
it has been stored (its cursor holds the receipts): a tick that fails, or whose result is lost, leaves its messages to
come back after `INVISIBLE_SECONDS`, and the days they name are then found already run (by their run keys). boto3
loads only here, when a queue is configured.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from urllib.parse import unquote_plus, urlsplit

INVISIBLE_SECONDS = 600  # how long a received message stays hidden: many ticks, so the next one deletes it
RECEIVES = 20  # receive calls a tick at most (10 messages each); a backlog is drained over the next ticks
DRAIN_SECONDS = 20.0  # no receive call starts after this long: a tick has 60 s, and the days named still need listing
# A queue that accepts connections but does not answer fails fast (botocore's defaults wait 60 s, 5 times), so that the
# tick falls back to listing the open days within its 60 s.
CLIENT_CONFIG = {"connect_timeout": 3, "read_timeout": 5, "retries": {"max_attempts": 2, "mode": "standard"}}
REGION = re.compile(r"(?:^|\.)([a-z]{2}(?:-[a-z]+)+-\d+)\.")  # sqs.<region>.amazonaws.com, <region>.queue..., vpce
DAY_FOLDER = "dt="


class QueueUnusable(Exception):
    """The queue cannot be read (gone, no permission, unreachable): the sensor lists the open days instead."""


@dataclass(frozen=True)
class Notices:
    """What one drain of the queue found: the landing day folders its messages name (`YYYY-MM-DD` as written, not
    checked), the receipts to delete them by, and a description of each message that is not an S3 event."""

    days: frozenset[str]
    receipts: tuple[str, ...]
    not_understood: tuple[str, ...]


def drain(queue_url: str, landing_url: str) -> Notices:
    """Receive what the queue holds (up to `RECEIVES` calls), hiding each message for `INVISIBLE_SECONDS`."""
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, _, prefix = landing_url.removeprefix("s3://").partition("/")
    days: set[str] = set()
    receipts: list[str] = []
    not_understood: list[str] = []
    try:
        sqs, began = _client(queue_url), time.monotonic()
        for _ in range(RECEIVES):
            if time.monotonic() - began > DRAIN_SECONDS:
                break
            received = sqs.receive_message(
                QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=INVISIBLE_SECONDS, WaitTimeSeconds=0
            ).get("Messages", [])
            for message in received:
                receipts.append(message["ReceiptHandle"])
                try:
                    days |= named_days(message["Body"], bucket, prefix.strip("/"))
                except Exception as error:  # whatever a body holds (JSON nested past recursion): dropped, said
                    not_understood.append(f"message {message.get('MessageId')}: {str(error)[:300]}")
            if not received:
                break
    except (BotoCoreError, ClientError) as error:
        raise QueueUnusable(f"the landing queue {queue_url} cannot be read: {error}") from error
    return Notices(frozenset(days), tuple(receipts), tuple(not_understood))


def forget(queue_url: str, receipts: list[str]) -> list[str]:
    """Delete the messages these receipts name; what could not be deleted (a receipt outdated because the message came
    back, a queue gone) is returned, for a warning: those messages are read again, which runs nothing twice."""
    if not receipts:
        return []
    from botocore.exceptions import BotoCoreError, ClientError

    failed: list[str] = []
    try:
        sqs = _client(queue_url)
        for start in range(0, len(receipts), 10):
            entries = [{"Id": str(k), "ReceiptHandle": r} for k, r in enumerate(receipts[start : start + 10])]
            answer = sqs.delete_message_batch(QueueUrl=queue_url, Entries=entries)
            failed += [f"{f.get('Code')}: {f.get('Message', '')}".strip() for f in answer.get("Failed", [])]
    except (BotoCoreError, ClientError) as error:
        failed.append(str(error))
    return failed


def _client(queue_url: str):
    """An SQS client in the queue's region (from its host: `sqs.<region>.amazonaws.com`, `<region>.queue.amazonaws.com`,
    a VPC endpoint's), or the environment's for a queue at another endpoint (`AWS_ENDPOINT_URL`); failing fast."""
    import boto3
    from botocore.config import Config

    found = REGION.search(urlsplit(queue_url).hostname or "")
    return boto3.client("sqs", region_name=found[1] if found else None, config=Config(**CLIENT_CONFIG))


def named_days(body: str, bucket: str, prefix: str) -> set[str]:
    """The landing day folders (`dt=<day>/...` under `prefix` of `bucket`) a message's S3 events name; other keys,
    buckets and S3's test event name none. A body that is not an S3 event notification raises ValueError."""
    try:
        message = json.loads(body)
    except ValueError as error:
        raise ValueError(f"not JSON ({error})") from None
    if (
        isinstance(message, dict) and message.get("Type") == "Notification" and isinstance(message.get("Message"), str)
    ):  # through SNS
        return named_days(message["Message"], bucket, prefix)
    days = set()
    for record in _records(message):
        key = _named(record, bucket)
        if key is None or (prefix and not key.startswith(prefix + "/")):
            continue
        inside = key[len(prefix) + 1 :] if prefix else key
        day, slash, _ = inside.removeprefix(DAY_FOLDER).partition("/")
        if inside.startswith(DAY_FOLDER) and slash:
            days.add(day)
    return days


def _records(message: object) -> list[dict]:
    """The events of a message: S3's own (`Records`), one of EventBridge (`detail`), or none for S3's test event."""
    if isinstance(message, dict):
        if isinstance(message.get("Records"), list) and all(isinstance(r, dict) for r in message["Records"]):
            return message["Records"]
        if message.get("Event") == "s3:TestEvent":
            return []
        if message.get("source") == "aws.s3" and isinstance(message.get("detail"), dict):
            return [{"eventBridge": message["detail"]}]
    raise ValueError(f"not an S3 event notification: {str(message)[:200]!r}")


def _named(record: dict, bucket: str) -> str | None:
    """The key one event names in `bucket`, decoded (S3's notifications encode keys as in a form, EventBridge does
    not), or None for an event of another bucket or service."""
    if "eventBridge" in record:
        detail, encoded = record["eventBridge"], False
    elif record.get("eventSource") == "aws:s3":
        detail, encoded = record.get("s3"), True
    else:
        return None
    name, key = _at(detail, "bucket", "name"), _at(detail, "object", "key")
    if name != bucket or not isinstance(key, str):
        return None
    return unquote_plus(key) if encoded else key


def _at(value: object, *path: str) -> object:
    """`value[path[0]][path[1]]...`, or None where a step is missing or not an object."""
    for step in path:
        value = value.get(step) if isinstance(value, dict) else None
    return value

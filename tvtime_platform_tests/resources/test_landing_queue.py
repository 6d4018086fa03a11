"""Reading S3 event notifications: the landing days a message names, whatever the key's characters, the message's
route (direct, SNS, EventBridge) or its shape; anything that is not an S3 event is refused, never a crash."""

import json
from urllib.parse import quote_plus

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tvtime_platform.resources.landing_queue import named_days


def s3_event(bucket: str, key: str, name: str = "ObjectCreated:Put") -> dict:
    """One record as S3 sends it: the key encoded as in a form (moto's server encodes it the same way)."""
    return {
        "eventSource": "aws:s3",
        "eventName": name,
        "s3": {"bucket": {"name": bucket}, "object": {"key": quote_plus(key)}},
    }


def direct(*records: dict) -> str:
    return json.dumps({"Records": list(records)})


# Names S3 accepts: any UTF-8 but "/" (the folders here), including what form encoding changes (space, +, %, &).
FILE_NAMES = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="/"), min_size=1, max_size=40)


@given(name=FILE_NAMES, day=st.dates().map(str), prefix=st.sampled_from(["", "landing", "a b/ü+%"]))
def test_an_s3_event_names_the_day_of_its_key_whatever_the_file_is_called(name, day, prefix):
    key = f"{prefix}/dt={day}/hour=03/{name}".lstrip("/")
    assert named_days(direct(s3_event("bkt", key)), "bkt", prefix) == {day}
    through_sns = json.dumps({"Type": "Notification", "Message": direct(s3_event("bkt", key, "ObjectRemoved:Delete"))})
    assert named_days(through_sns, "bkt", prefix) == {day}
    bridge = {
        "source": "aws.s3",
        "detail-type": "Object Created",
        "detail": {"bucket": {"name": "bkt"}, "object": {"key": key}},
    }
    assert named_days(json.dumps(bridge), "bkt", prefix) == {day}


def test_keys_outside_the_landing_days_name_none():
    others = [
        s3_event("other-bucket", "landing/dt=2024-03-01/hour=01/a.jsonl.gz"),
        s3_event("bkt", "landing2/dt=2024-03-02/hour=01/a.jsonl.gz"),  # a prefix that only starts alike
        s3_event("bkt", "landing/catalog/shows.jsonl.gz"),
        s3_event("bkt", "landing/dt=2024-03-03"),  # no folder below it
        s3_event("bkt", "landing/notes/dt=2024-03-04/x"),
        {"eventSource": "aws:sqs", "body": "x"},
        {"eventSource": "aws:s3", "s3": "not an object"},
        {"eventSource": "aws:s3", "s3": {"bucket": {"name": "bkt"}, "object": {"key": 7}}},
    ]
    kept = s3_event("bkt", "landing/dt=2024-03-05/hour=01/a.jsonl.gz")
    assert named_days(direct(*others, kept), "bkt", "landing") == {"2024-03-05"}
    assert named_days(json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent"}), "bkt", "landing") == set()


@pytest.mark.parametrize(
    "body",
    [
        "",
        "not json",
        "[1, 2]",
        "null",
        '{"Records": "none"}',
        '{"Records": [1]}',
        '{"Type": "Notification", "Message": 3}',
    ],
)
def test_a_message_that_is_not_an_s3_event_is_refused(body):
    with pytest.raises(ValueError, match="not JSON|not an S3 event notification"):
        named_days(body, "bkt", "landing")


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=20)
    | st.sampled_from(["aws:s3", "aws.s3", "Notification", "bkt", "landing/dt=2024-01-01/x", "s3:TestEvent"]),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "Records",
                    "s3",
                    "bucket",
                    "name",
                    "object",
                    "key",
                    "eventSource",
                    "aws:s3",
                    "detail",
                    "source",
                    "Type",
                    "Message",
                ]
            ),
            inner,
            max_size=5,
        )
    ),
    max_leaves=20,
)


@given(JSON)
def test_any_json_is_read_or_refused_never_a_crash(message):
    try:
        days = named_days(json.dumps(message), "bkt", "landing")
    except ValueError:
        return
    assert isinstance(days, set)

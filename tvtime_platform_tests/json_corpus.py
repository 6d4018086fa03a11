"""A conformance corpus written from RFC 8259, rule by rule, and from the platform's line rules.

Each JSON case is a value with the verdict the grammar gives it. Tests use every case twice: as a
line of its own (a value that is not an object is `malformed_json` even when it is JSON; an object is
then judged as an event) and as the value of an unknown field of an otherwise valid event (kept when
the value is JSON, `malformed_json` when not). Byte cases are whole lines, with their reason.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path

MALFORMED = "malformed_json"


@dataclass(frozen=True)
class Case:
    rule: str
    text: str
    valid: bool


def _cases(rule: str, valid: bool, *texts: str) -> list[Case]:
    return [Case(rule, text, valid) for text in texts]


# RFC 8259 section 2: JSON-text = ws value ws; the literal names in lowercase; whitespace is space, tab, LF, CR.
# (A value here is written inside one line, so LF is left out.)
GRAMMAR = [
    *_cases("2 literals", True, "true", "false", "null"),
    *_cases("2 literals are lowercase", False, "True", "FALSE", "Null", "nul", "undefined", "none"),
    *_cases("2 whitespace: space, tab, CR", True, ' {"a" : 1 } ', "\t[\t1\t,\t2\t]\t", '{"a":\r1}', "[ ]", "{ }"),
    *_cases("2 other whitespace is not", False, "\x0c[1]", "[1\x0b]", "[\u00a01]", "[1,\u20082]", "\ufeff[1]"),
    *_cases("2 one value per text", False, "[1] [2]", '{"a":1}}', '{"a":1}{"b":2}', "1 2", '"a" "b"', "[1]]", "[1],"),
    # section 3 and 7 of JSON5 and JavaScript are not JSON: comments
    *_cases("2 no comments", False, "[1] // c", "[1 /* c */]", "/* c */ [1]", "# c", "[1] #"),
    # section 4: objects
    *_cases("4 objects", True, "{}", '{"a":{"b":{"c":{}}}}', '{"":0}', '{"a":[],"b":{}}', '{"a b":1,"\\u0000":2}'),
    *_cases("4 no trailing comma in objects", False, '{"a":1,}', '{"a":1 , }', "{,}", '{"a":1,,"b":2}', '{,"a":1}'),
    *_cases(
        "4 names are strings", False, "{a:1}", "{'a':1}", "{1:1}", "{null:1}", '{"a"}', '{"a":}', '{"a" 1}', '{"a"::1}'
    ),
    *_cases("4 members need commas", False, '{"a":1 "b":2}', '{"a":1;"b":2}'),
    *_cases("4 repeated names are allowed", True, '{"a":"b","a":"c"}', '{"a":1,"a":{"a":2,"a":3}}'),
    *_cases("4 objects close", False, "{", '{"a":1', '{"a":[1}', '{"a":1]'),
    # section 5: arrays
    *_cases("5 arrays", True, "[]", '[1,"a",null,true,[],{}]', "[[[[[[1]]]]]]"),
    *_cases("5 no trailing comma in arrays", False, "[1,]", "[1,,2]", "[,1]", "[,]", '[""],'),
    *_cases("5 arrays close", False, "[", "[1", "[1,2", "[1}"),
    # section 6: numbers
    *_cases(
        "6 numbers",
        True,
        "0",
        "-0",
        "1",
        "-1",
        "1.5",
        "-1.5e10",
        "1E+2",
        "1e-2",
        "0.0",
        "1.0e0",
        "0e0",
        "-0.0E-0",
        "123456789012345678901234567890",
        "1e400",
        "-1e400",
        "1e-400",
        "4.000000000000000001",
        "9223372036854775808",
    ),
    *_cases(
        "6 no leading zeros, plus signs, bare points or hex",
        False,
        "01",
        "-01",
        "00",
        "+1",
        ".5",
        "1.",
        "1.e2",
        "1e",
        "1e+",
        "-",
        "0x10",
        "- 1",
        "--1",
        "1_000",
        "1,5",
        "\u0661",
        "0.1.2",
    ),
    *_cases(
        "6 no NaN or infinities",
        False,
        "NaN",
        "-NaN",
        "Infinity",
        "-Infinity",
        "Inf",
        "-Inf",
        "nan",
        "inf",
        "+Infinity",
    ),
    # section 7: strings
    *_cases(
        "7 strings",
        True,
        '""',
        '"a\\"b"',
        '"\\\\"',
        '"\\/"',
        '"\\b\\f\\n\\r\\t"',
        '"\\u00e9"',
        '"\\u20AC"',
        '"\\u0000"',
        '"é中😀"',
        '"\x7f"',
        '"\\ud83d\\ude00"',
        '"\\uDBFF\\uDFFF"',
        '"a\u2028b"',
    ),
    *_cases("7 control characters are escaped", False, '"a\tb"', '"a\rb"', '"a\x01b"', '"a\x1fb"', '"a\x00b"'),
    *_cases(
        "7 only the eight escapes and \\uXXXX",
        False,
        '"\\x41"',
        '"\\a"',
        '"\\\'"',
        '"\\u12"',
        '"\\uZZZZ"',
        '"\\u 123"',
        '"\\U00e9"',
        '"\\"',
        '"abc',
    ),
    *_cases("7 strings use double quotes", False, "'abc'", "`abc`"),
    # section 8.2: the platform refuses escaped lone surrogates (no Unicode text)
    *_cases(
        "8.2 lone surrogates are refused",
        False,
        '"\\ud800"',
        '"\\udc00"',
        '"\\ud800\\u0041"',
        '"a\\udfff"',
        '{"\\ud800":1}',
        '"\\ude00\\ud83d"',
    ),
    # section 9: the platform's limits
    *_cases("9 nesting up to 64 levels", True, "[" * 62 + "]" * 62),
    *_cases(
        "9 nesting deeper than 64 levels is refused", False, "[" * 64 + "]" * 64, "[" * 5000 + "]" * 5000, "[" * 5000
    ),
]

# The event the corpus embeds values in, and event-field cases: what the schema makes of JSON's forms.
BASE_EVENT = {
    "event_type": "episode_watched",
    "user_id": 7,
    "ts": "2024-03-01T20:15:03.120Z",
    "platform": "ios",
    "country": "US",
    "show_id": 10,
    "episode_id": 100,
}


def event_line(event_id: str, extra: str | None = None, **fields: str) -> str:
    """A valid event as a line, with some fields written as raw JSON text and an unknown field `extra` holding
    `extra`."""
    members = [f'"event_id":{json.dumps(event_id)}']
    for name, value in BASE_EVENT.items():
        members.append(f'"{name}":{fields.pop(name) if name in fields else json.dumps(value)}')
    members += [f'"{name}":{value}' for name, value in fields.items()]
    if extra is not None:
        members.append(f'"extra":{extra}')
    return "{" + ",".join(members) + "}"


# (raw JSON text per field, the reason, or None when the event is kept)
FIELD_CASES = [
    ({"user_id": "7.0"}, None),
    ({"user_id": "7E0"}, None),
    ({"user_id": "70e-1"}, None),
    ({"user_id": "9223372036854775807"}, None),
    ({"user_id": "123456789012345678"}, None),
    ({"user_id": "9223372036854775808"}, "invalid_value:user_id"),
    ({"user_id": "1e400"}, "invalid_value:user_id"),
    ({"user_id": "-1e400"}, "invalid_value:user_id"),
    ({"user_id": "-0"}, "invalid_value:user_id"),
    ({"user_id": "7.5"}, "wrong_type:user_id"),
    ({"user_id": "4.000000000000000001"}, "wrong_type:user_id"),
    ({"user_id": "1e-400"}, "wrong_type:user_id"),
    ({"user_id": '"7"'}, "wrong_type:user_id"),
    ({"user_id": "[7]"}, "wrong_type:user_id"),
    ({"user_id": "null"}, "missing_field:user_id"),
    ({"country": '"U\\u0053"'}, None),
    ({"country": '"\\u0055\\u0053"'}, None),
    ({"country": '"us"'}, "invalid_value:country"),
    ({"country": '"\\u00c9\\u00c9"'}, "invalid_value:country"),
    ({"country": '{"code":"US"}'}, "wrong_type:country"),
    ({"platform": '"i\\u006fs"'}, None),
    ({"ts": '"2024-03-01T20:15:03Z"'}, None),
    ({"ts": '"2024-03-01T21:15:03.123456+01:00"'}, None),
    ({"ts": '"2024-03-01T20:15:03.1234567Z"'}, "invalid_value:ts"),
    ({"ts": '"2024-03-01T23:15:03+05"'}, "invalid_value:ts"),
    ({"ts": '"2024-03-01 20:15:03Z"'}, "invalid_value:ts"),
    # RFC 3339 5.6, its note: "T" and "Z" may be lower case.
    ({"ts": '"2024-03-01T20:15:03z"'}, None),
    ({"ts": '"2024-03-01t20:15:03Z"'}, None),
    ({"ts": '"2024-03-01t21:15:03.5+01:00"'}, None),
    ({"ts": '"2024-03-01 20:15:03z"'}, "invalid_value:ts"),
    ({"ts": '"2024-03-01x20:15:03Z"'}, "invalid_value:ts"),
    ({"ts": '"2024-02-30T20:15:03Z"'}, "invalid_value:ts"),
    ({"ts": '"2024-03-01T24:15:03Z"'}, "invalid_value:ts"),
    ({"ts": '"2024-03-01T20:15:03+18:00"'}, "invalid_value:ts"),
    ({"ts": '"2024-03-01T20:15:03"'}, "invalid_value:ts"),
    ({"ts": "1709324103"}, "wrong_type:ts"),
    ({"user_id": "7", "extra2": "1"}, None),
    # Values an engine's regex or cast could read more kindly than the rules: line terminators after a valid value,
    # hour 24.
    ({"country": '"US\\n"'}, "invalid_value:country"),
    ({"country": '"US\\r\\n"'}, "invalid_value:country"),
    ({"country": '"US\\u2028"'}, "invalid_value:country"),
    ({"country": '"US\\u0085"'}, "invalid_value:country"),
    ({"platform": '"ios\\n"'}, "invalid_value:platform"),
    ({"ts": '"2024-03-01T20:15:03.120Z\\n"'}, "invalid_value:ts"),
    ({"ts": '"2024-03-01T20:15:03.120Z\\r\\n"'}, "invalid_value:ts"),
    ({"ts": '"2024-02-29T24:00:00Z"'}, "invalid_value:ts"),
    ({"ts": '"2024-03-01T24:00:00Z"'}, "invalid_value:ts"),
    # Numbers no converter should meet whole: exponents of twenty digits, zero with a huge exponent.
    ({"user_id": "1e99999999999999999999"}, "invalid_value:user_id"),
    ({"user_id": "1e-99999999999999999999"}, "wrong_type:user_id"),
    ({"user_id": "0e400"}, "invalid_value:user_id"),
    ({"user_id": "123e999999999999999998"}, "invalid_value:user_id"),
    ({"user_id": "1e+" + "0" * 35}, None),  # exponents with leading zeros: 1, 1 and 5
    ({"user_id": "100e-" + "0" * 33 + "2"}, None),
    ({"rating": "5" + "0" * 40 + "e-" + "0" * 29 + "40", "event_type": '"episode_rated"'}, None),
    ({"user_id": "1e" + "0" * 40 + "19"}, "invalid_value:user_id"),
    ({"rating": "4E0", "event_type": '"episode_rated"'}, None),
    # A name longer than a parser's limit (Jackson's is 50,000 characters) in an unknown field.
    ({"k" * 60_000: "1"}, None),
]

# Repeated names at the top level of an event: the event fields' repeats are refused, others ignored.
REPEATS = [
    ('{"user_id":7,' + event_line("{id}")[1:], "repeated_field:user_id"),
    (event_line("{id}")[:-1] + ',"country":"US"}', "repeated_field:country"),
    (event_line("{id}")[:-1] + ',"user\\u005fid":7}', "repeated_field:user_id"),
    (event_line("{id}")[:-1] + ',"note":1,"note":2}', None),
    (event_line("{id}")[:-1] + ',"note":"\\"user_id\\":1","x":"user_id"}', None),
]


def corpus_lines() -> list[tuple[str, str | None]]:
    """Every JSON case as text lines with the reason each must get (None: kept), event ids unique and telling."""
    lines: list[tuple[str, str | None]] = []
    for k, case in enumerate(GRAMMAR):
        is_object = case.text.strip(" \t\r").startswith("{")
        verbatim = "missing_field:event_id" if case.valid and is_object else MALFORMED
        lines.append((case.text, verbatim))
        lines.append((event_line(f"grammar-{k}", extra=case.text), None if case.valid else MALFORMED))
    for k, (fields, reason) in enumerate(FIELD_CASES):
        lines.append((event_line(f"field-{k}", **dict(fields)), reason))
    for k, (template, reason) in enumerate(REPEATS):
        lines.append((template.replace("{id}", f"repeat-{k}"), reason))
    return lines


def kept_ids(lines: list[tuple[str, str | None]]) -> set[str]:
    return {json.loads(text)["event_id"] for text, reason in lines if reason is None}


GOOD = event_line("{id}").encode()

# Byte-level cases: (bytes of a line, reason; None: kept, "blank": not a line at all).
BYTE_LINES = [
    (b"\xff" + GOOD.replace(b"{id}", b"b-start"), "invalid_utf8"),
    (GOOD.replace(b"{id}", b"b-mid\xe9"), "invalid_utf8"),
    (GOOD.replace(b"{id}", b"b-end") + b"\x80", "invalid_utf8"),
    (GOOD.replace(b"{id}", b"b-overlong\xc0\xaf"), "invalid_utf8"),
    (GOOD.replace(b"{id}", b"b-surrogate\xed\xa0\x80"), "invalid_utf8"),
    (GOOD.replace(b"{id}", b"b-cut\xe2\x82"), "invalid_utf8"),
    (GOOD.replace(b"{id}", b"b-5byte\xf8\x88\x80\x80\x80"), "invalid_utf8"),
    (GOOD.replace(b"{id}", b"b-nul\x00"), MALFORMED),
    (GOOD.replace(b"{id}", b"b-nul-outside")[:-1] + b",\x00}", MALFORMED),
    (GOOD.replace(b"{id}", b"b-crlf") + b"\r", None),  # the CR of a CRLF ending
    (GOOD.replace(b"{id}", b"b-cr-inside").replace(b",", b",\r", 1), None),  # a CR is JSON whitespace
    (GOOD.replace(b"{id}", b"b-bom-later").join([b"\xef\xbb\xbf", b""]), MALFORMED),  # a BOM not at a file's start
    (GOOD.replace(b"{id}", "b-unicode-é中😀".encode()), None),
    (b"", "blank"),
    (b"   \t ", "blank"),
    (b"\r", "blank"),
    (GOOD.replace(b"{id}", b"b-big")[:-1] + b',"pad":"' + b"x" * ((1 << 20) - 200) + b'"}', None),
    (GOOD.replace(b"{id}", b"b-too-long")[:-1] + b',"pad":"' + b"x" * (1 << 20) + b'"}', "line_too_long"),
]


def byte_files(folder: Path) -> dict[Path, list[tuple[bytes, str | None]]]:
    """Landing files of the byte cases, each case at the start, the middle and the end of a file and at a file's
    start and end (the last line without a newline); with the lines each file holds."""
    files: dict[Path, list[tuple[bytes, str | None]]] = {}
    for k, (line, line_reason) in enumerate(BYTE_LINES):
        for where in ("start", "middle", "end"):
            reason = line_reason
            tag = f"{k}-{where}".encode()
            own = line.replace(b"b-", b"b-" + tag + b"-", 1)
            fill = [(GOOD.replace(b"{id}", f"fill-{k}-{where}-{n}".encode()), None) for n in range(3)]
            if where == "start" and own.startswith(b"\xef\xbb\xbf"):
                reason = None  # a byte-order mark that starts a file is dropped
            body = {
                "start": [(own, reason), *fill],
                "middle": [fill[0], (own, reason), *fill[1:]],
                "end": [*fill, (own, reason)],
            }[where]
            path = folder / f"part-bytes-{k:02d}-{where}.jsonl.gz"
            newline_at_end = where != "end"
            path.write_bytes(gzip.compress(b"\n".join(text for text, _ in body) + (b"\n" if newline_at_end else b"")))
            files[path] = body
    bom = folder / "part-bom.jsonl.gz"
    files[bom] = [(GOOD.replace(b"{id}", b"b-bom-first"), None), (GOOD.replace(b"{id}", b"b-after-bom"), None)]
    bom.write_bytes(gzip.compress(b"\xef\xbb\xbf" + b"\r\n".join(text for text, _ in files[bom]) + b"\r\n"))
    return files

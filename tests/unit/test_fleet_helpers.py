"""The pure parts of the fleet CLI: directory keys and cursors, DLQ summaries, the progress bar."""

from __future__ import annotations

import io
import json

import pytest

from b24cli.bulk_cmd import Progress
from b24core.portals.directory import decode_cursor, encode_cursor, normalize_domain, sort_key
from b24core.worker.dlq import member_of, summary


def test_domains_are_matched_without_scheme_case_path_or_trailing_dot():
    assert normalize_domain(" HTTPS://Acme.Bitrix24.com/rest/ ") == "acme.bitrix24.com"
    assert normalize_domain("acme.bitrix24.com.") == "acme.bitrix24.com"
    assert sort_key("Acme.bitrix24.com", "m1") == "acme.bitrix24.com#m1"


def test_a_cursor_round_trips_and_a_foreign_one_is_refused():
    key = {
        "pk": {"S": "PORTAL#m"},
        "sk": {"S": "DIRECTORY"},
        "gsi1pk": {"S": "PORTALS"},
        "gsi1sk": {"S": "a#m"},
    }
    assert decode_cursor(encode_cursor(key)) == key
    assert encode_cursor(None) == "" and decode_cursor("") is None
    for bad in ("not-a-cursor", encode_cursor({"x": 1})[:-3] + "!!", "WzFd"):  # the last is "[1]"
        with pytest.raises(ValueError):
            decode_cursor(bad)


RAW_FORM = {
    "event": "ONCRMDEALADD",
    "data": {"FIELDS": {"ID": "7"}},
    "auth": {
        "member_id": "m-raw",
        "domain": "raw.example",
        "access_token": "secret-a",
        "refresh_token": "secret-r",
        "application_token": "secret-app",
    },
}


def test_a_dlq_summary_names_the_portal_and_object_and_never_a_token():
    msg = {
        "MessageId": "1",
        "Body": json.dumps(RAW_FORM),
        "Attributes": {
            "ApproximateReceiveCount": "6",
            "SentTimestamp": "1000000",
            "ApproximateFirstReceiveTimestamp": "1001000",
        },
    }
    shown = summary(msg, now=1_100.0)
    assert shown["member_id"] == "m-raw" and shown["domain"] == "raw.example" and shown["object_id"] == "7"
    assert shown["attempts"] == 6 and shown["age_s"] == 100 and shown["first_failure_at"] == 1001
    assert "secret" not in json.dumps(shown)


def test_the_member_id_attribute_wins_over_the_body_and_garbage_is_unreadable():
    msg = {
        "Body": json.dumps({"member_id": "body"}),
        "MessageAttributes": {"member_id": {"StringValue": "attr"}},
    }
    assert member_of(msg) == "attr"
    assert member_of({"Body": json.dumps({"member_id": "body"})}) == "body"
    assert summary({"Body": "not json"})["event"] == "UNREADABLE"


def test_the_progress_bar_redraws_one_line_with_its_tally():
    out = io.StringIO()
    bar = Progress("probe", 4, out, width=8)
    for outcome in ("pending", "pending", "failed"):
        bar.step(outcome)
    bar.close()
    last = out.getvalue().rstrip("\n").split("\r")[-1]
    assert last == "probe [######..] 3/4 failed=1 pending=2"

import io
import json
import logging

from b24core.aws.logs import MASK, RedactingFormatter, dumps_safe, redact, remember_secret


def test_secret_keys_are_masked_at_any_depth():
    value = {"auth": {"access_token": "abc"}, "data": {"FIELDS": {"ID": "1"}}, "refresh_token": "r"}
    out = redact(value)
    assert out["auth"] == MASK
    assert out["refresh_token"] == MASK
    assert out["data"] == {"FIELDS": {"ID": "1"}}


def test_known_secret_is_masked_even_inside_free_text():
    remember_secret("s3cr3t-token-value-123")
    rendered = dumps_safe({"message": "failed with s3cr3t-token-value-123 in it"})
    assert "s3cr3t-token-value-123" not in rendered
    assert MASK in rendered


def test_formatter_masks_extra_keys_and_message():
    remember_secret("another-secret-456789")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(RedactingFormatter())
    log = logging.getLogger("redaction-test")
    log.addHandler(handler)
    log.propagate = False
    log.warning("token another-secret-456789 leaked?", extra={"application_token": "zzz", "member_id": "m"})
    line = json.loads(stream.getvalue())
    assert "another-secret-456789" not in stream.getvalue()
    assert line["application_token"] == MASK
    assert line["member_id"] == "m"


def test_the_remembered_secrets_are_bounded_and_the_most_recent_are_kept():
    from b24core.aws import logs

    first = "oldest-remembered-secret"
    logs.remember_secret(first)
    for i in range(logs.MAX_REMEMBERED):
        logs.remember_secret(f"filler-secret-{i:06d}")
    assert len(logs._known_secrets) == logs.MAX_REMEMBERED
    assert logs.mask_known(f"x {first} y") == f"x {first} y"  # evicted: the set does not grow forever
    assert logs.mask_known("x filler-secret-000009 y") == "x *** y"


def test_a_request_body_is_never_logged():
    from b24core.aws.logs import redact

    event = {"body": "AUTH_ID=abc&REFRESH_ID=def", "isBase64Encoded": False, "rawPath": "/install"}
    assert redact(event) == {"body": "***", "isBase64Encoded": False, "rawPath": "/install"}

"""The inbound parse: an event's auth block read once, strict numbers, a 400 for a client's mistake."""

import pytest

from b24core.aws.apigw import HttpError
from b24core.bitrix.inbound import EventAuth, claim_from_event, claim_from_request
from tests.unit.test_install_service import event_form, frame


def test_an_auth_block_reads_as_posted_and_non_text_reads_empty():
    auth = EventAuth.of(event_form(member_id=" m1", user_id={"x": "1"}, status="L"))
    assert auth is not None
    assert auth.member_id == " m1"  # looked up exactly as sent, never trimmed into another portal
    assert auth.user_id == "" and auth.status == "L" and auth.expires_in == 3600
    assert "rt-123456" not in repr(auth) and "at-123456" not in repr(auth)
    assert EventAuth.of({"event": "ONCRMDEALADD"}) is None


@pytest.mark.parametrize("raw", ["1e3", "²", "+5", "9" * 40])
def test_a_malformed_expiry_is_named_and_refused_by_the_install_claim(raw):
    auth = EventAuth.of(event_form(expires_in=raw))
    assert auth is not None and auth.expires_in is None and auth.malformed == {"expires_in"}
    with pytest.raises(HttpError) as err:
        claim_from_event(event_form(expires_in=raw))
    assert (err.value.status, err.value.code) == (400, "bad_field")
    with pytest.raises(HttpError) as err:
        claim_from_request(*frame(AUTH_EXPIRES=raw))
    assert (err.value.status, err.value.code) == (400, "bad_field")


def test_an_expiry_is_bounded_and_an_hour_when_unsaid():
    assert claim_from_event(event_form(expires_in="")).expires_in == 3600
    assert claim_from_event(event_form(expires_in="-5")).expires_in == 0
    assert claim_from_event(event_form(expires_in="999999")).expires_in == 24 * 3600


def test_an_offered_pair_needs_the_whole_pair():
    auth = EventAuth.of(event_form(expires_in="junk"))
    assert auth is not None
    pair = auth.offered_pair()
    assert pair is not None and (pair.member_id, pair.expires_in) == ("m1", 3600)
    half = EventAuth.of(event_form(refresh_token=""))
    assert half is not None and half.offered_pair() is None

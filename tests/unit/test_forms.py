import pytest

from b24core.bitrix.forms import FormError, FormLimits, encode_form, parse_form


def test_php_bracket_event_body_becomes_nested_dicts():
    body = (
        "event=ONCRMDEALUPDATE&event_handler_id=7&data%5BFIELDS%5D%5BID%5D=42&ts=1700000000"
        "&auth%5Bdomain%5D=x.bitrix24.com&auth%5Bmember_id%5D=m1&auth%5Bapplication_token%5D=t"
    )
    form = parse_form(body)
    assert form["event"] == "ONCRMDEALUPDATE"
    assert form["data"] == {"FIELDS": {"ID": "42"}}
    assert form["auth"]["member_id"] == "m1"


def test_list_fields_and_round_trip():
    data = {"a": ["1", "2"], "b": {"c": {"d": "x y&z"}}}
    assert parse_form(encode_form(data)) == data


@pytest.mark.parametrize(
    ("body", "limits", "message"),
    [
        ("a=" + "x" * 2000, FormLimits(max_bytes=100), "exceeds"),
        ("a" + "[x]" * 20 + "=1", FormLimits(max_depth=8), "deeper"),
        ("&".join(f"k{i}=1" for i in range(50)), FormLimits(max_keys=10), "too many"),
        ("a=1&a[b]=2", FormLimits(), "both a value and a group"),
        ("a]=1", FormLimits(), "malformed"),
    ],
)
def test_limits_and_malformed_bodies_are_refused(body, limits, message):
    with pytest.raises(FormError, match=message):
        parse_form(body, limits)


def test_non_utf8_is_refused():
    with pytest.raises(FormError):
        parse_form(b"a=\xff\xfe")

"""PHP bracket encoding used by the Bitrix24 simulator (events out, form/query params in)."""

from __future__ import annotations

from urllib.parse import parse_qsl

from b24sim import forms


def test_encode_nested_event_like_http_build_query() -> None:
    body = forms.encode(
        {"event": "ONCRMDEALUPDATE", "data": {"FIELDS": {"ID": "7"}}, "ts": "1", "auth": {"domain": "a.b"}}
    )
    assert parse_qsl(body) == [
        ("event", "ONCRMDEALUPDATE"),
        ("data[FIELDS][ID]", "7"),
        ("ts", "1"),
        ("auth[domain]", "a.b"),
    ]
    assert "data%5BFIELDS%5D%5BID%5D=7" in body


def test_encode_scalars_lists_none_and_empty_containers() -> None:
    pairs = forms.flatten({"t": True, "f": False, "n": None, "i": 3, "l": ["x", "y"], "e": {}, "el": []})
    assert pairs == [("t", "1"), ("f", "0"), ("i", "3"), ("l[0]", "x"), ("l[1]", "y")]


def test_encode_escapes_reserved_characters() -> None:
    body = forms.encode({"q": "a b&c=d", "u": "http://x/y?z=1"})
    assert dict(parse_qsl(body)) == {"q": "a b&c=d", "u": "http://x/y?z=1"}
    assert "a+b%26c%3Dd" in body


def test_parse_builds_nested_dicts_and_lists() -> None:
    parsed = forms.parse("filter%5B%3EID%5D=5&select[]=ID&select[]=TITLE&order[ID]=DESC&start=-1")
    assert parsed == {
        "filter": {">ID": "5"},
        "select": ["ID", "TITLE"],
        "order": {"ID": "DESC"},
        "start": "-1",
    }


def test_parse_numeric_keys_become_lists_only_when_sequential() -> None:
    assert forms.parse("a[0]=x&a[1]=y") == {"a": ["x", "y"]}
    assert forms.parse("a[1]=x&a[3]=y") == {"a": {"1": "x", "3": "y"}}


def test_parse_last_value_wins_and_bare_keys_are_empty() -> None:
    assert forms.parse("a=1&a=2&flag&=skipped") == {"a": "2", "flag": ""}


def test_round_trip() -> None:
    data = {"event": "X", "data": {"FIELDS": {"ID": "1"}, "QUERY": {"any": "da ta"}}, "l": ["1", "2"]}
    assert forms.parse(forms.encode(data)) == data


def test_parse_pairs_for_multipart_fields() -> None:
    assert forms.parse_pairs([("fields[TITLE]", "T"), ("auth", "x")]) == {
        "fields": {"TITLE": "T"},
        "auth": "x",
    }

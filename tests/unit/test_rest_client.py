"""The REST client against a scripted portal (httpx.MockTransport: no sockets)."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from b24core.bitrix import errors as E
from b24core.bitrix.http import USER_AGENT, http_client
from b24core.bitrix.rest import call_rest, endpoint_from_location
from b24core.portals.states import TokenState
from b24core.tokens.client import PortalClient
from b24core.tokens.outcomes import ReauthRequired

from ._token_fakes import FakeAuthServer, make_keeper, make_portal

ENDPOINT = "https://p.example.com/rest/"


def answer(status: int, body) -> httpx.Response:
    if isinstance(body, str):
        return httpx.Response(status, text=body, headers={"Content-Type": "text/html"})
    return httpx.Response(status, json=body)


def scripted(*replies):
    calls = []
    queue = list(replies)

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        reply = queue.pop(0) if len(queue) > 1 else queue[0]
        return reply(request) if callable(reply) else reply

    return httpx.Client(transport=httpx.MockTransport(handler)), calls


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (401, "expired_token", E.ExpiredToken),
        (401, "NO_AUTH_FOUND", E.NoAuthFound),
        (503, "QUERY_LIMIT_EXCEEDED", E.QueryLimitExceeded),
        (429, "OPERATION_TIME_LIMIT", E.OperationTimeLimit),
        (403, "insufficient_scope", E.InsufficientScope),
        (403, "ACCESS_DENIED", E.AccessDenied),
        (403, "INVALID_CREDENTIALS", E.InvalidCredentials),
        (403, "user_access_error", E.UserAccessError),
        (404, "ERROR_METHOD_NOT_FOUND", E.MethodNotFound),
        (404, "ERROR_MANIFEST_IS_NOT_AVAILABLE", E.MethodNotFound),
        (503, "OVERLOAD_LIMIT", E.OverloadLimit),
        (500, "PORTAL_DELETED", E.PortalDeleted),
        (402, "PAYMENT_REQUIRED", E.PaymentRequired),
        (402, "SOMETHING_ABOUT_BILLING", E.PaymentRequired),
        (500, "INTERNAL_SERVER_ERROR", E.ServerError),
        (500, "ERROR_UNEXPECTED_ANSWER", E.ServerError),
        (502, "A_NEW_CODE", E.ServerError),
        (400, "INVALID_REQUEST", E.InvalidRequest),
        (400, "ERROR_BATCH_LENGTH_EXCEEDED", E.BatchLengthExceeded),
        (405, "ERROR_BATCH_METHOD_NOT_ALLOWED", E.BatchMethodNotAllowed),
        (400, "WRONG_AUTH_TYPE", E.WrongAuthType),
    ],
)
def test_every_documented_error_code_is_a_typed_exception(status, code, cls):
    client, _ = scripted(answer(status, {"error": code, "error_description": "d"}))
    with pytest.raises(cls) as err:
        call_rest(ENDPOINT, "crm.deal.get", {"id": 1}, "token-abcdef", client=client)
    assert err.value.code == code and err.value.status == status
    assert isinstance(err.value, E.B24Error)


def test_limits_and_server_faults_are_retryable_auth_and_scope_errors_are_not():
    assert E.QueryLimitExceeded().retryable and E.OperationTimeLimit().retryable
    assert E.ServerError().retryable and E.TransportError().retryable and E.BadResponse().retryable
    assert not E.ExpiredToken().retryable and not E.InsufficientScope().retryable
    assert not E.PaymentRequired().retryable and not E.MethodNotFound().retryable


def test_operation_time_limit_carries_reset_at_from_the_error_or_the_last_success():
    client, _ = scripted(
        answer(200, {"result": 1, "time": {"operating_reset_at": 1778747792, "operating": 3.3}}),
        answer(429, {"error": "OPERATION_TIME_LIMIT", "error_description": "blocked"}),
    )
    call_rest("https://limits.example.com/rest/", "tasks.task.list", {}, "token-abcdef", client=client)
    with pytest.raises(E.OperationTimeLimit) as err:
        call_rest("https://limits.example.com/rest/", "tasks.task.list", {}, "token-abcdef", client=client)
    assert err.value.reset_at == 1778747792
    client, _ = scripted(
        answer(429, {"error": "OPERATION_TIME_LIMIT", "time": {"operating_reset_at": 1778740000}})
    )
    with pytest.raises(E.OperationTimeLimit) as err:
        call_rest(ENDPOINT, "crm.item.list", {}, "token-abcdef", client=client)
    assert err.value.reset_at == 1778740000


def test_non_json_answers_become_typed_errors():
    client, _ = scripted(answer(502, "<html>Bad gateway</html>"))
    with pytest.raises(E.ServerError) as err:
        call_rest(ENDPOINT, "user.current", {}, "token-abcdef", client=client)
    assert err.value.retryable and err.value.status == 502
    client, _ = scripted(answer(402, "<html>Payment required</html>"))
    with pytest.raises(E.PaymentRequired):
        call_rest(ENDPOINT, "user.current", {}, "token-abcdef", client=client)
    client, _ = scripted(answer(404, "<html>Not found</html>"))
    with pytest.raises(E.BadResponse) as bad:
        call_rest(ENDPOINT, "user.current", {}, "token-abcdef", client=client)
    assert bad.value.status == 404
    client, _ = scripted(answer(200, "<html>maintenance</html>"))
    with pytest.raises(E.BadResponse):
        call_rest(ENDPOINT, "user.current", {}, "token-abcdef", client=client)
    client, _ = scripted(answer(200, ["not", "an", "object"]))
    with pytest.raises(E.BadResponse):
        call_rest(ENDPOINT, "user.current", {}, "token-abcdef", client=client)


def test_timeouts_are_transport_errors_without_the_token():
    def slow(request):
        raise httpx.ReadTimeout("timed out", request=request)

    client, _ = scripted(slow)
    with pytest.raises(E.TransportError) as err:
        call_rest(ENDPOINT, "user.current", {}, "token-secret-123", client=client)
    assert err.value.retryable and "token-secret-123" not in str(err.value)


def test_the_call_posts_json_with_the_token_and_answers_result_total_next():
    client, calls = scripted(answer(200, {"result": [{"ID": "1"}], "total": 120, "next": 50, "time": {}}))
    got = call_rest(ENDPOINT, "crm.deal.list", {"select": ["ID"]}, "token-abcdef", client=client)
    assert (got.result, got.total, got.next) == ([{"ID": "1"}], 120, 50)
    request = calls[0]
    assert request.method == "POST" and str(request.url) == f"{ENDPOINT}crm.deal.list"
    assert json.loads(request.content) == {"select": ["ID"], "auth": "token-abcdef"}


def test_the_shared_client_has_a_user_agent_timeouts_and_never_follows_redirects():
    client = http_client(7.0)
    assert client.headers["User-Agent"] == USER_AGENT and USER_AGENT.startswith("b24-serverless-bundle/")
    assert client.timeout.read == 7.0 and client.timeout.connect == 5.0
    assert client.follow_redirects is False
    assert http_client(7.0) is client  # one pooled client per process


# ---------------------------------------------------------------- the client with token custody
class FakePortal:
    """A portal that knows which access tokens are live and which have expired."""

    def __init__(self, auth: FakeAuthServer, endpoint: str = ENDPOINT) -> None:
        self.auth = auth
        self.endpoint = endpoint
        self.expired: set[str] = set()
        self.requests: list[tuple[str, dict]] = []
        self.moved_to: str | None = None
        self.deals = [{"ID": str(i), "TITLE": f"deal {i}"} for i in range(1, 131)]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        method = url.rsplit("/", 1)[-1]
        body = json.loads(request.content or b"{}")
        self.requests.append((url, dict(body)))
        if self.moved_to and url.startswith(self.endpoint):
            return httpx.Response(302, headers={"Location": f"{self.moved_to}{method}"})
        token = body.pop("auth", "")
        if token in self.expired:
            return answer(401, {"error": "expired_token", "error_description": "expired"})
        if token not in self.auth.access:
            return answer(401, {"error": "NO_AUTH_FOUND", "error_description": "Wrong authorization data"})
        if method == "batch":
            return answer(200, {"result": self.batch(body), "time": {}})
        if method == "crm.deal.list":
            return answer(200, self.deal_list(body))
        return answer(200, {"result": {"method": method, "params": body}, "time": {}})

    def batch(self, body):
        result, errors = {}, {}
        for key, cmd in body["cmd"].items():
            method, _, query = cmd.partition("?")
            if method == "missing.method":
                errors[key] = {"error": "ERROR_METHOD_NOT_FOUND", "error_description": "Method not found!"}
                if body.get("halt"):
                    break
                continue
            result[key] = {"method": method, "query": parse_qs(query)}
        return {"result": result, "result_error": errors or [], "result_total": [], "result_next": []}

    def deal_list(self, body):
        start = int(body.get("start", 0))
        rows = self.deals
        flt = body.get("filter") or {}
        if ">ID" in flt:
            rows = [d for d in rows if int(d["ID"]) > int(flt[">ID"])]
        if start < 0:
            return {"result": rows[:50], "total": 0, "time": {}}
        page = rows[start : start + 50]
        out = {"result": page, "total": len(rows), "time": {}}
        if start + 50 < len(rows):
            out["next"] = start + 50
        return out


@pytest.fixture
def world():
    keeper, store, auth, clock, leases = make_keeper()
    portal_server = FakePortal(auth)
    http = httpx.Client(transport=httpx.MockTransport(portal_server))
    portal = store.save(make_portal(auth))
    client = PortalClient(portal, keeper, http=http)
    return client, portal_server, auth, store, keeper


def test_expired_token_is_refreshed_at_the_auth_server_and_the_call_retried_once(world):
    client, portal_server, auth, store, _ = world
    portal_server.expired.add(client.portal.access_token)
    assert client.call("user.current")["method"] == "user.current"
    assert auth.refreshes == ["ok"]
    assert [urlsplit(u).path for u, _ in portal_server.requests] == ["/rest/user.current"] * 2
    assert portal_server.requests[1][1]["auth"] == store.get("m1").access_token
    assert client.last_recovery_s is not None


def test_an_expired_token_after_the_refresh_is_not_refreshed_in_a_loop(world):
    client, portal_server, auth, _, _ = world
    portal_server.expired.add(client.portal.access_token)
    original = auth.refresh

    def refresh_then_expire(*args):
        pair = original(*args)
        portal_server.expired.add(pair.access_token)
        return pair

    auth.refresh = refresh_then_expire
    with pytest.raises(E.ExpiredToken):
        client.call("user.current")
    assert auth.refreshes == ["ok"]


def test_no_auth_found_rereads_the_store_once_for_a_newer_pair(world):
    client, portal_server, auth, store, _ = world
    stale = client.portal
    auth.access.pop(stale.access_token)  # revoked (a reinstall issued new tokens)
    access, refresh = auth.issue()
    from dataclasses import replace

    store.save(replace(store.get("m1"), access_token=access, refresh_token=refresh))
    assert client.call("user.current")["method"] == "user.current"
    assert auth.refreshes == []
    auth.access.pop(access)
    with pytest.raises(E.NoAuthFound):
        client.call("user.current")


def test_a_lost_portal_is_not_called_at_all(world):
    client, portal_server, auth, store, keeper = world
    portal_server.expired.add(client.portal.access_token)
    auth.valid.clear()
    with pytest.raises(ReauthRequired):
        client.call("user.current")
    assert store.get("m1").token_state == TokenState.REAUTH_REQUIRED
    calls = len(portal_server.requests)
    with pytest.raises(ReauthRequired):
        PortalClient(store.get("m1"), keeper).call("user.current")
    assert len(portal_server.requests) == calls


def test_batch_sends_chunks_of_50_and_types_each_commands_error(world):
    client, portal_server, _, _, _ = world
    commands = {f"c{i}": ("crm.deal.get", {"id": i, "flags": [True, None]}) for i in range(120)}
    commands["bad"] = ("missing.method", {})
    got = client.batch(commands)
    assert got.requests == 3
    assert [u.rsplit("/", 1)[-1] for u, _ in portal_server.requests] == ["batch"] * 3
    assert all(len(body["cmd"]) <= 50 for _, body in portal_server.requests)
    assert len(got.result) == 120 and got.result["c7"]["query"] == {"id": ["7"], "flags[0]": ["1"]}
    assert isinstance(got.errors["bad"], E.MethodNotFound)
    assert got["error"]["bad"]["error"] == "ERROR_METHOD_NOT_FOUND"  # the first version's dict shape
    assert not got.ok


def test_batch_halt_stops_at_the_first_error_including_later_requests(world):
    client, portal_server, _, _, _ = world
    commands = {"a": ("user.current", {}), "bad": ("missing.method", {}), "c": ("user.current", {})}
    commands.update({f"later{i}": ("user.current", {}) for i in range(60)})
    got = client.batch(commands, halt=True)
    assert got.requests == 1
    assert set(got.result) == {"a"} and set(got.errors) == {"bad"}
    assert "c" in got.skipped and "later59" in got.skipped
    assert portal_server.requests[0][1]["halt"] == 1


def test_list_paging_follows_next(world):
    client, portal_server, _, _, _ = world
    ids = [d["ID"] for d in client.iter_list("crm.deal.list", {"select": ["ID"]})]
    assert ids == [str(i) for i in range(1, 131)]
    assert [body["start"] for _, body in portal_server.requests] == [0, 50, 100]


def test_fast_paging_filters_by_id_with_start_minus_one(world):
    client, portal_server, _, _, _ = world
    ids = [d["ID"] for d in client.iter_by_id("crm.deal.list", {"select": ["ID", "TITLE"]})]
    assert ids == [str(i) for i in range(1, 131)]
    bodies = [body for _, body in portal_server.requests]
    assert [b["filter"][">ID"] for b in bodies] == [0, 50, 100]
    assert all(b["start"] == -1 and b["order"] == {"ID": "ASC"} for b in bodies)


def test_a_moved_portal_is_followed_after_the_auth_server_confirms_and_stored(world):
    client, portal_server, auth, store, _ = world
    auth.endpoint = "https://renamed.example.com/rest/"
    auth.domain = "renamed.example.com"
    portal_server.moved_to = auth.endpoint
    assert client.call("user.current")["method"] == "user.current"
    stored = store.get("m1")
    assert (stored.client_endpoint, stored.domain) == (auth.endpoint, "renamed.example.com")
    assert [u for u, _ in portal_server.requests] == [
        f"{ENDPOINT}user.current",
        "https://renamed.example.com/rest/user.current",
    ]
    assert auth.app_info_calls == 1


def test_a_redirect_the_auth_server_does_not_confirm_is_never_followed(world):
    client, portal_server, auth, store, _ = world
    portal_server.moved_to = "https://attacker.example.net/rest/"
    with pytest.raises(E.PortalMoved):
        client.call("user.current")
    assert all(not u.startswith("https://attacker") for u, _ in portal_server.requests)
    assert store.get("m1").client_endpoint == ENDPOINT


def test_endpoint_from_location_strips_the_method():
    assert (
        endpoint_from_location("https://new.example.com/rest/crm.deal.get.json?x=1", "crm.deal.get", ENDPOINT)
        == "https://new.example.com/rest/"
    )
    assert endpoint_from_location("https://new.example.com/", "crm.deal.get", ENDPOINT) == (
        "https://new.example.com/rest/"
    )

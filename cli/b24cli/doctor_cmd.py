"""``b24app doctor [--portal MEMBER_ID] [--json]``: is a deployed (or the local) stack ready to serve?

Each check says ok, warn or fail, what it saw, and for anything not ok a ``fix:`` line. The exit code
is 1 when a check failed, so a deploy pipeline can run it after ``sam deploy``. It reads what the
stack's functions read (the secret's SSM parameter, the table and its key, the queues, the schedules,
the authorization server) with the operator's credentials, and tests a portal's stored tokens through
TokenRefreshFunction (``smoke``: one ``app.info`` call, no refresh), because only the functions may
open tokens. It never prints a secret or token: the secret is read to prove it is there, then dropped.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from b24cli import doctor_env
from b24cli.doctor_env import StackInfo

OK, WARN, FAIL = "ok", "warn", "fail"


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    detail: str
    fix: str = ""


def _when(ts: int | float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC") if ts else "-"


def _error(exc: Exception) -> str:
    """An AWS error's code and message (they name resources, never values)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        err = response.get("Error") or {}
        return f"{err.get('Code', type(exc).__name__)}: {err.get('Message', '')}".strip()
    return f"{type(exc).__name__}: {exc}"


# ---------------------------------------------------------------- stack checks
def check_secret(info: StackInfo) -> Check:
    name = info.parameters.get("B24ClientSecretParameter", "")
    fix_put = (
        f"aws ssm put-parameter --name {name} --type SecureString --value 'CLIENT_SECRET' "
        "(the secret Bitrix24 shows beside the client_id; docs/deploy.md)"
    )
    if not name:
        return Check(
            "client secret", FAIL, "the stack names no B24ClientSecretParameter", "redeploy the stack"
        )
    try:
        if name.startswith("secretsmanager:") or name.startswith("arn:aws:secretsmanager:"):
            secret = info.client("secretsmanager").get_secret_value(
                SecretId=name.removeprefix("secretsmanager:")
            )
            value, kind = secret.get("SecretString") or "", "Secrets Manager secret"
        else:
            param = info.client("ssm").get_parameter(Name=name, WithDecryption=True)["Parameter"]
            value, kind = param.get("Value") or "", str(param.get("Type"))
            if kind != "SecureString":
                return Check(
                    "client secret",
                    FAIL,
                    f"{name} is a {kind}, stored unencrypted",
                    f"store it again as a SecureString: {fix_put} --overwrite",
                )
    except Exception as exc:
        return Check("client secret", FAIL, f"{name} is not readable: {_error(exc)}", fix_put)
    if not value.strip():
        return Check("client secret", FAIL, f"{name} is empty", fix_put + " --overwrite")
    del value
    return Check("client secret", OK, f"{name} readable ({kind})")


def _key_check(info: StackInfo, name: str, key_id: str) -> Check:
    try:
        meta = info.client("kms").describe_key(KeyId=key_id)["KeyMetadata"]
    except Exception as exc:
        return Check(name, FAIL, f"key {key_id} not describable: {_error(exc)}", "check the key exists")
    state = str(meta.get("KeyState"))
    if state != "Enabled":
        return Check(
            name,
            FAIL,
            f"key {meta.get('KeyId')} is {state}",
            f"aws kms enable-key --key-id {meta.get('KeyId')} (pending deletion: cancel-key-deletion first)",
        )
    return Check(name, OK, f"key {meta.get('KeyId')} enabled")


def check_table(info: StackInfo) -> list[Check]:
    try:
        table = info.client("dynamodb").describe_table(TableName=info.target.table_name)["Table"]
    except Exception as exc:
        return [
            Check(
                "table",
                FAIL,
                f"{info.target.table_name}: {_error(exc)}",
                "check the stack deployed completely (aws cloudformation describe-stack-events)",
            )
        ]
    status = str(table.get("TableStatus"))
    checks = [
        Check(
            "table",
            OK if status == "ACTIVE" else FAIL,
            f"{info.target.table_name} {status}",
            "wait for ACTIVE",
        )
    ]
    sse = table.get("SSEDescription") or {}
    key_arn = str(sse.get("KMSMasterKeyArn") or info.outputs.get("TableKeyArn") or "")
    if info.local and not sse:
        checks.append(Check("table key", OK, "local: DynamoDB Local does not encrypt (AWS uses TableKey)"))
    elif sse.get("Status") != "ENABLED" or not key_arn:
        checks.append(
            Check(
                "table key",
                FAIL,
                f"encryption at rest {sse.get('Status', 'unknown')}",
                "the key is inaccessible or disabled: enable TableKey (aws kms enable-key) and wait",
            )
        )
    else:
        checks.append(_key_check(info, "table key", key_arn))
    if info.target.token_key_id:
        checks.append(_key_check(info, "token key", info.target.token_key_id))
    return checks


def check_queues(info: StackInfo) -> list[Check]:
    sqs = info.client("sqs")
    checks = []
    for name, url in (
        ("events queue", info.target.events_queue_url),
        ("events DLQ", info.target.events_dlq_url),
    ):
        if not url:
            checks.append(Check(name, FAIL, "the stack names no queue", "redeploy the stack"))
            continue
        try:
            attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        except Exception as exc:
            checks.append(Check(name, FAIL, f"{url}: {_error(exc)}", "check the stack deployed completely"))
            continue
        depth = int(attrs.get("ApproximateNumberOfMessages", 0))
        if name == "events DLQ" and depth:
            checks.append(
                Check(
                    name,
                    FAIL,
                    f"{depth} event(s) failed repeatedly and wait in the DLQ",
                    "read the worker's logs for why, fix it, then `b24app events redrive`",
                )
            )
        else:
            checks.append(Check(name, OK, f"reachable, {depth} message(s) waiting"))
    return checks


def check_schedules(info: StackInfo) -> Check:
    try:
        schedules = info.schedules()
    except Exception as exc:
        return Check("schedules", FAIL, f"not readable: {_error(exc)}", "check scheduler:GetSchedule access")
    if not schedules:
        return Check("schedules", FAIL, "the stack has no schedules", "redeploy the stack (template.yaml)")
    off = sorted(name for name, enabled in schedules.items() if not enabled)
    if off:
        return Check(
            "schedules",
            FAIL,
            f"{len(off)} of {len(schedules)} disabled: {', '.join(off)}",
            "aws scheduler update-schedule ... --state ENABLED, or redeploy the stack",
        )
    return Check("schedules", OK, f"{len(schedules)} enabled{info.schedule_note}")


def check_auth_server(info: StackInfo, timeout_s: float = 10.0, http: Any = None) -> Check:
    """A refresh with a made-up refresh token and no secret: a working server answers a documented
    OAuth error (settings/oauth/error-codes.md: invalid_client / invalid_grant / invalid_request)."""
    import httpx

    base = info.parameters.get("B24OAuthUrl", "").rstrip("/")
    fix = "check B24OAuthUrl and that the functions reach the internet (a VPC needs a NAT gateway)"
    if not base:
        return Check("auth server", FAIL, "the stack names no B24OAuthUrl", "redeploy the stack")
    params = {
        "grant_type": "refresh_token",
        "client_id": info.parameters.get("B24ClientId", ""),
        "refresh_token": "b24app-doctor-probe",
    }
    try:
        resp = (http or httpx).get(f"{base}/oauth/token/", params=params, timeout=timeout_s)
        payload = resp.json()
    except (httpx.HTTPError, ValueError) as exc:
        return Check("auth server", FAIL, f"{base} did not answer: {type(exc).__name__}", fix)
    if isinstance(payload, dict) and payload.get("error"):
        return Check("auth server", OK, f"{base} answers (HTTP {resp.status_code}, {payload['error']})")
    return Check("auth server", FAIL, f"{base} answered HTTP {resp.status_code} without an OAuth error", fix)


# ---------------------------------------------------------------- one portal
def check_portal(
    info: StackInfo, member_id: str, invoke: Callable[[dict[str, Any]], dict[str, Any]]
) -> list[Check]:
    from b24core.portals.store import DynamoPortalStore

    t = info.target
    portal = DynamoPortalStore(t.table_name, t.region, t.dynamodb_endpoint).get(member_id)
    if portal is None:
        return [Check("portal", FAIL, f"no portal with member_id {member_id}", "b24app portals list")]
    v = portal.public_view()
    token_ok = v["state"] == "active" and v["token_state"] == "active" and v["has_refresh_token"]  # noqa: S105
    checks = [
        Check(
            "portal tokens",
            OK if token_ok else FAIL,
            f"{v['domain']}: {v['state']}, tokens {v['token_state']}, access token expires "
            f"{_when(v['access_expires_at'])}, last refresh {_when(v['refreshed_at'])}, "
            f"keep-alive due {_when(v['refresh_due_at'])}",
            "" if token_ok else f"b24app portals show {member_id} says why; reauth: its admin opens the app",
        ),
        _delivery_check(info, member_id),
    ]
    try:
        smoke = invoke({"action": "smoke", "member_id": member_id})
    except Exception as exc:
        checks.append(Check("token smoke test", FAIL, _error(exc), "check TokenRefreshFunction's logs"))
        return checks
    outcome = str(smoke.get("outcome") or smoke.get("error") or "unknown")
    if outcome == "ok":
        detail = f"app.info answered: app status {smoke.get('app_status') or '-'}"
        checks.append(
            Check("token smoke test", OK, detail + ("" if smoke.get("installed") else ", NOT installed"))
        )
    elif outcome == "skipped":
        checks.append(
            Check(
                "token smoke test",
                WARN,
                f"skipped: {smoke.get('reason')}",
                "the next call refreshes it; run doctor again after any event or `b24app tokens refresh`",
            )
        )
    else:
        checks.append(
            Check(
                "token smoke test",
                FAIL,
                f"app.info refused: {smoke.get('reason') or outcome}",
                f"b24app portals show {member_id}; a refused token needs its admin to open the app again",
            )
        )
    return checks


def _delivery_check(info: StackInfo, member_id: str) -> Check:
    from b24cli.delivery_cmd import view

    v = view(info.target, member_id)
    if v is None:
        return Check("delivery", WARN, "not probed yet", f"b24app portals probe {member_id}")
    reason = f" ({v['reason']})" if v["reason"] else ""
    line = f"{v['mode']}{reason}, last confirmed {_when(v['last_confirmed_at'])}"
    if v["mode"] in ("pull", "polling"):
        return Check(
            "delivery",
            WARN,
            line + ": events do not reach the app, changes are fetched instead",
            f"b24app portals show {member_id} says what its admin must open",
        )
    if not v["last_confirmed_at"] and v["mode"] == "online":
        return Check(
            "delivery",
            WARN,
            line + ": no event has been seen to arrive yet",
            f"b24app portals probe {member_id} --wait 120",
        )
    return Check("delivery", OK, line)


# ---------------------------------------------------------------- command
def run_checks(info: StackInfo, member_id: str | None) -> list[Check]:
    checks = [check_secret(info), *check_table(info), *check_queues(info), check_schedules(info)]
    checks.append(check_auth_server(info))
    if member_id:
        checks.extend(check_portal(info, member_id, info.invoke_refresh_function))
    return checks


def cmd_doctor(args: argparse.Namespace) -> int:
    started = time.monotonic()
    info = doctor_env.stack_info(args.stack)
    checks = run_checks(info, args.portal)
    failed = [c for c in checks if c.status == FAIL]
    if args.json:
        print(
            json.dumps(
                {
                    "stack": info.target.description,
                    "ok": not failed,
                    "checks": [asdict(c) for c in checks],
                    "seconds": round(time.monotonic() - started, 2),
                },
                indent=2,
            )
        )
        return 1 if failed else 0
    print(f"b24app doctor: {info.target.description}")
    width = max(len(c.name) for c in checks)
    for c in checks:
        print(f"  {c.status.upper():4}  {c.name:{width}}  {c.detail}")
        if c.fix and c.status != OK:
            print(f"        {'':{width}}  fix: {c.fix}")
    print("all checks passed" if not failed else f"{len(failed)} check(s) failed")
    return 1 if failed else 0


def register(sub: Any) -> None:
    p = sub.add_parser("doctor", help="check a deployed (or the local) stack end to end, and say what to fix")
    p.add_argument("--portal", metavar="MEMBER_ID", help="also check this portal's tokens and delivery")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_doctor)


__all__ = ["Check", "cmd_doctor", "register", "run_checks"]

"""Wiring of the worker in a Lambda process: store, limiter, requeue and guard ledger from settings."""

from __future__ import annotations

from typing import Any

from b24core.aws.settings import get_settings
from b24core.entry import wiring as runtime
from b24core.worker.dispatch import Worker
from b24core.worker.guard_ledger import GuardLedger
from b24core.worker.handlers import Registry
from b24core.worker.health import PortalHealth
from b24core.worker.read_claims import ReadClaims
from b24core.worker.read_marks import ReadMarks
from b24core.worker.retry import RetryPolicy


def _requeue(bodies: list[str], delay_s: int) -> set[int]:
    """Send events back delayed, ten per request; returns the positions SQS did not take."""
    answer = runtime.boto_client("sqs").send_message_batch(
        QueueUrl=get_settings().events_queue_url,
        Entries=[
            {"Id": str(i), "MessageBody": body, "DelaySeconds": max(0, min(900, delay_s))}
            for i, body in enumerate(bodies)
        ],
    )
    return {int(entry["Id"]) for entry in answer.get("Failed") or []}


def _backoff(receipt_handle: str, seconds: int) -> None:
    runtime.boto_client("sqs").change_message_visibility(
        QueueUrl=get_settings().events_queue_url, ReceiptHandle=receipt_handle, VisibilityTimeout=seconds
    )


def _kind_of() -> Any:
    """An event's listable kind of object (the manifest's ``objects``), or None."""
    from b24core.capabilities.manifest import load_manifest

    manifest = load_manifest()
    kinds = {event: spec.kind for spec in manifest.objects() for event in spec.events}
    return kinds.get


def build_worker(registry: Registry) -> Worker:
    """The worker; its guard ledger's claims last the invocation (the Lambda context it is called with)."""
    s = get_settings()
    budget = s.worker_portal_budget_s
    worker = Worker(
        registry,
        load_portal=runtime.portal_store().get,
        # A portal's answer may take at most its share of the invocation (a slow box's own time).
        make_client=lambda portal: runtime.portal_client(portal, timeout_s=min(s.http_timeout_s, budget)),
        limiter=runtime.rate_limiter(),
        requeue=_requeue,
        guard=GuardLedger(runtime.boto_client("dynamodb"), s.table_name),
        max_wait_s=get_settings().worker_max_wait_s,
        backoff=_backoff,
        retry_base_s=get_settings().retry_base_s,
        marks=ReadMarks(runtime.boto_client("dynamodb"), get_settings().table_name),
        connector=get_settings().delivery.auth_connector,
        portal_budget_s=budget,
        seen=runtime.seen_marks(),
        kind_of=_kind_of(),
        health=PortalHealth(runtime.boto_client("dynamodb"), s.table_name),
        retry_policy=RetryPolicy(window_s=s.retry_window_s, base_s=s.retry_base_s),
        claims=ReadClaims(runtime.boto_client("dynamodb"), s.table_name),
    )
    return worker

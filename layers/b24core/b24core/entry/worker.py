"""Wiring of the worker in a Lambda process: store, limiter, requeue and idempotency from settings."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from b24core.aws.settings import get_settings
from b24core.entry import wiring as runtime
from b24core.portals.keys import IDEMPOTENCY_SHARDS, idempotency_pk
from b24core.worker.dispatch import Worker
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


def _idempotency() -> Any:
    """Powertools idempotency whose records spread over IDEMPOTENCY_SHARDS partition keys.

    Powertools puts every record of one persistence layer under its one ``static_pk_value``: a storm's
    guard writes would all hit one partition (about 1,000 writes a second). So there is one layer per
    shard, and each event goes to the shard a hash of its guarded payload picks - the same one on every
    redelivery, so the guard still finds its record.
    """
    from aws_lambda_powertools.utilities.idempotency import (
        DynamoDBPersistenceLayer,
        IdempotencyConfig,
        idempotent_function,
    )

    s = get_settings()
    config = IdempotencyConfig(event_key_jmespath="message", expires_after_seconds=24 * 3600)

    def layer(shard: int) -> Any:
        return DynamoDBPersistenceLayer(
            table_name=s.table_name,
            key_attr="pk",
            sort_key_attr="sk",
            static_pk_value=idempotency_pk(shard),
            expiry_attr="ttl",
            boto3_client=runtime.boto_client("dynamodb"),
        )

    def wrap(fn: Any) -> Any:
        guarded: dict[int, Any] = {}  # shard -> fn behind that shard's layer, built on first use

        def call(payload: dict[str, Any]) -> Any:
            shard = payload_shard(payload.get("message"))
            if shard not in guarded:
                guarded[shard] = idempotent_function(
                    data_keyword_argument="payload", config=config, persistence_store=layer(shard)
                )(fn)
            return guarded[shard](payload=payload)

        return call

    return wrap, config


def payload_shard(message: Any) -> int:
    """A stable shard of the guarded message (its canonical JSON's hash), uniform over the shards."""
    canonical = json.dumps(message, sort_keys=True, separators=(",", ":"), default=str)
    return int.from_bytes(hashlib.sha256(canonical.encode()).digest()[:4], "big") % IDEMPOTENCY_SHARDS


def _kind_of() -> Any:
    """An event's listable kind of object (the manifest's ``objects``), or None."""
    from b24core.capabilities.manifest import load_manifest

    manifest = load_manifest()
    kinds = {event: spec.kind for spec in manifest.objects() for event in spec.events}
    return kinds.get


def build_worker(registry: Registry) -> tuple[Worker, Any]:
    """The worker and the idempotency config (register the Lambda context on it per invocation)."""
    wrap, config = _idempotency()
    s = get_settings()
    budget = s.worker_portal_budget_s
    worker = Worker(
        registry,
        load_portal=runtime.portal_store().get,
        # A portal's answer may take at most its share of the invocation (a slow box's own time).
        make_client=lambda portal: runtime.portal_client(portal, timeout_s=min(s.http_timeout_s, budget)),
        limiter=runtime.rate_limiter(),
        requeue=_requeue,
        idempotent=wrap,
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
    return worker, config

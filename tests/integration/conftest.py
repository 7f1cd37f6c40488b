"""Real DynamoDB Local and a moto SQS server, started once per session from template.yaml."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def services() -> Iterator[object]:
    from b24stack.services import LocalServices

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    svc = LocalServices(in_memory=True)
    svc.start()
    try:
        svc.resources = svc.create_resources(ROOT / "template.yaml")  # type: ignore[attr-defined]
        yield svc
    finally:
        svc.stop()


@pytest.fixture
def member_id() -> str:
    return uuid.uuid4().hex


class Deployed:
    """The environment template.yaml gives EventWorkerFunction, pointed at the local services, and the
    worker exactly as the function builds it (``build_worker``)."""

    def __init__(self, services, monkeypatch) -> None:
        self.services, self.monkeypatch = services, monkeypatch
        self.env(
            TABLE_NAME=services.resources["AppTable"],
            EVENTS_QUEUE_URL=services.resources["EventsQueue"],
            AWS_ENDPOINT_URL_DYNAMODB=services.dynamodb_endpoint,
            AWS_ENDPOINT_URL_SQS=services.moto_endpoint,
        )

    def env(self, **values: str) -> None:
        """Set (more of) the function's environment; settings and cached clients are read again."""
        for name, value in values.items():
            self.monkeypatch.setenv(name, value)
        clear_cached()

    def worker(self, registry):
        from b24core.entry.worker import build_worker

        return build_worker(registry)

    @staticmethod
    def context(request_id: str = "r1", remaining_ms: int = 60_000) -> SimpleNamespace:
        """A Lambda context: the guard's claims last its remaining time."""
        return SimpleNamespace(
            function_name="EventWorkerFunction",
            memory_limit_in_mb=256,
            invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:EventWorkerFunction",
            aws_request_id=request_id,
            get_remaining_time_in_millis=lambda: remaining_ms,
        )

    @staticmethod
    def record(member_id: str, deal: int, event: str = "ONCRMDEALUPDATE", mid: str = "") -> dict:
        """An SQS record of one event of a deal, as the event source mapping hands it over."""
        from b24core.events.message import QueuedEvent

        body = QueuedEvent(
            event=event, member_id=member_id, domain="p", data={"FIELDS": {"ID": str(deal)}}, ts="1"
        ).to_json()
        return {
            "messageId": mid or f"m-{deal}",
            "receiptHandle": f"rh-{deal}",
            "body": body,
            "attributes": {"ApproximateReceiveCount": "1"},
            "messageAttributes": {},
            "md5OfBody": "",
            "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q",
            "awsRegion": "us-east-1",
        }


def clear_cached() -> None:
    from b24core.aws.settings import get_settings
    from b24core.entry import wiring

    cached = [getattr(wiring, n) for n in dir(wiring) if hasattr(getattr(wiring, n), "cache_clear")]
    for fn in (get_settings, *cached):
        fn.cache_clear()


@pytest.fixture
def deployed(services, monkeypatch) -> Iterator[Deployed]:
    yield Deployed(services, monkeypatch)
    monkeypatch.undo()  # the environment first, so nothing cached keeps the test's settings
    clear_cached()

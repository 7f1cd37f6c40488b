"""Real DynamoDB Local and a moto SQS server, started once per session from template.yaml."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

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

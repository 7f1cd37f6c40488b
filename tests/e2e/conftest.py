"""The whole local stack (template.yaml) against the Bitrix24 simulator, started once per session."""

from __future__ import annotations

import os
import secrets
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from b24core.portals.app_data import DynamoAppStorage
from b24core.portals.sealing import KmsCodec
from b24core.portals.store import DynamoPortalStore
from b24sim import Simulator
from b24stack.aws_calls import ENV_VAR as AWS_CALLS_ENV
from b24stack.stack import LocalStack
from deal_mirror import mirror as deal_mirror

ROOT = Path(__file__).resolve().parents[2]
CLIENT_ID = "e2e.app"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(condition: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    """Poll until ``condition()`` is truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture(scope="session")
def sim() -> Iterator[Simulator]:
    with Simulator(CLIENT_ID, secrets.token_hex(16)) as s:
        yield s


def stack_env(sim: Simulator, port: int) -> dict[str, str]:
    """The environment every function of a test stack gets (the simulator as Bitrix24)."""
    return {
        "B24_CLIENT_ID": CLIENT_ID,
        # The client_secret is read from SSM (moto) exactly as in AWS, so the IAM check sees that call.
        "B24_OAUTH_URL": sim.oauth_url,
        "B24_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "B24_ALLOW_INSECURE_ENDPOINTS": "1",
        "B24_RETRY_BASE_S": "0",  # failed events come straight back, so N receives take seconds not hours
        # No hours of delayed retries for a failing portal's events (worker/retry.py): the fault tests
        # watch them reach the DLQ after N receives, and delayed messages would keep the stack busy.
        "B24_RETRY_HOURS": "0",
        # Delivery probes: the queue servers' list from the simulator; a probe is judged missed by the
        # first check after it was sent (tests fire the probe schedule by hand, nothing waits).
        "B24_APP_WORLD_URL": sim.app_world_url,
        "B24_PROBE_TIMEOUT_S": "0",
        "B24_PROBE_SOON_S": "0",
        # The change audit (docs/delivery.md) runs at every fired round, polled or not; a change's event
        # is awaited 30 s of the portal's clock (tests move the simulator's clock instead of waiting), an
        # outgoing webhook's 30 s too; deletions are reconciled every 2 s instead of hourly.
        "B24_AUDIT_INTERVAL_S": "0",
        "B24_POLL_INTERVAL_S": "0",
        "B24_AUDIT_GRACE_S": "30",
        "B24_POLL_GRACE_S": "30",
        "B24_RECONCILE_S": "2",
        # Every function logs every request it gets, as an operator debugging would switch on: the logs'
        # redaction must then still keep every token out (test_zz_no_secrets_in_logs.py checks it).
        "POWERTOOLS_LOGGER_LOG_EVENT": "true",
    }


@pytest.fixture(scope="session")
def stack(sim: Simulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    port = free_port()
    env = stack_env(sim, port)
    state = tmp_path_factory.mktemp("stack")
    # Every AWS call each function makes is recorded for the IAM check (test_zz_iam_coverage.py).
    env[AWS_CALLS_ENV] = str(state / "aws-calls")
    with LocalStack(
        ROOT, port=port, state_dir=state, in_memory=True, env_overrides=env, schedules=False
    ) as st:
        param = st.resolver.parameter_value("B24ClientSecretParameter") if st.resolver else ""
        st.client("ssm").put_parameter(Name=param, Value=sim._client_secret, Type="SecureString")
        yield st


@pytest.fixture(scope="session")
def store(stack: LocalStack) -> DynamoPortalStore:
    """Opens tokens like the functions do: with the stack's TokenKey on the moto server (real KMS calls)."""
    kms = stack.services.client("kms")
    codec = KmsCodec(stack.resources["TokenKey"], lambda: kms)
    return DynamoPortalStore(stack.resources["AppTable"], stack.region, stack.dynamodb_endpoint, codec)


class MirrorReader:
    """The example app's mirror as its CLI reads it: the app's storage of each portal."""

    def __init__(self, stack: LocalStack) -> None:
        self._db = stack.services.client("dynamodb")
        self._table = stack.resources["AppTable"]

    def storage(self, member_id: str) -> DynamoAppStorage:
        return DynamoAppStorage(self._db, self._table, member_id)

    def get(self, member_id: str, deal_id: str, kind: str = "deal") -> dict[str, Any] | None:
        return deal_mirror.get(self.storage(member_id), deal_id, kind)

    def history(self, member_id: str, deal_id: str) -> list[dict[str, Any]]:
        return deal_mirror.history(self.storage(member_id), deal_id)


@pytest.fixture(scope="session")
def mirror(stack: LocalStack) -> MirrorReader:
    return MirrorReader(stack)


@pytest.fixture
def install_url(stack: LocalStack) -> str:
    return f"{stack.gateway_url}/install"


@pytest.fixture
def events_url(stack: LocalStack) -> str:
    return f"{stack.gateway_url}/events"

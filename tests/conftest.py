"""Every suite talks to servers on 127.0.0.1 (the simulator, test servers): the address guard of
b24core.bitrix.http allows private addresses here, as B24_ALLOW_INSECURE_ENDPOINTS=1 does for the
local stack's functions. tests/unit/test_endpoints.py checks the guard itself with it switched off."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from b24core.bitrix import http
from b24stack.template import default_app

# What the functions get from template.yaml (AppModule), for the code tests run in this process.
os.environ.setdefault("B24_APP", default_app(Path(__file__).resolve().parents[1]))


@pytest.fixture(autouse=True, scope="session")
def _local_addresses_allowed() -> Iterator[None]:
    http.limits["allow_private_addresses"] = 1
    yield

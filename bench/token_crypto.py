"""What sealing tokens at rest costs (issue 10; b24core.portals.sealing).

1. Cold start: a fresh process that makes its DynamoDB and KMS clients and imports the AES-GCM code,
   against a fresh process that makes only its DynamoDB client (what every function pays anyway).
2. Per portal record: seal the access and refresh tokens and open them again (what a save and a read
   add), with the data-key cache and without it (every value a KMS call over HTTP to the moto server),
   against one GetItem of the record on DynamoDB Local, the read it rides on, measured in the same run.

Run: .venv/bin/python bench/token_crypto.py [--items 200] [--rounds 9] [--cold-only]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path[:0] = [str(Path(__file__).resolve().parent)]
from _common import ROOT, median, report  # noqa: E402

LAYER_DIR = ROOT / "layers" / "b24core"

COLD_OURS = """
import time
t0 = time.perf_counter()
import boto3
boto3.client("dynamodb")
from b24core.portals.sealing import KmsCodec
c = KmsCodec("k", lambda: boto3.client("kms"))
c._kms()
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
AESGCM(b"k" * 32)
print(time.perf_counter() - t0)
"""
COLD_AESGCM = """
import time
t0 = time.perf_counter()
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
AESGCM(b"k" * 32)
print(time.perf_counter() - t0)
"""
COLD_FLOOR = """
import time
t0 = time.perf_counter()
import boto3
boto3.client("dynamodb")
print(time.perf_counter() - t0)
"""


def cold_start(rounds: int) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(LAYER_DIR),
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
    }
    ours, floor, aead = [], [], []
    for _ in range(rounds):  # alternate, so machine noise hits all alike
        for script, out in ((COLD_OURS, ours), (COLD_FLOOR, floor), (COLD_AESGCM, aead)):
            res = subprocess.run(
                [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
            )
            out.append(float(res.stdout.strip().splitlines()[-1]))
    report(
        "token_crypto",
        "cold_start_with_kms_and_aesgcm",
        median(ours) * 1000,
        "ms",
        median(floor) * 1000,
        'fresh `import boto3; boto3.client("dynamodb")`',
        rounds=rounds,
    )
    report(
        "token_crypto",
        "cold_import_of_aesgcm_alone",
        median(aead) * 1000,
        "ms",
        median(floor) * 1000,
        'fresh `import boto3; boto3.client("dynamodb")`',
        rounds=rounds,
    )


def per_item(items: int) -> None:
    from b24core.portals.sealing import KmsCodec
    from b24stack.services import LocalServices

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    with LocalServices(in_memory=True) as services:
        kms = services.client("kms")
        key_id = kms.create_key(Description="bench")["KeyMetadata"]["KeyId"]
        ddb = services.client("dynamodb")
        table = "bench-crypto"
        ddb.create_table(
            TableName=table,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        token = "f" * 32

        def round_trip(codec: KmsCodec) -> float:
            t0 = time.perf_counter()
            for i in range(items):
                mid = f"m{i}"
                a = codec.seal(mid, "access_token", token)
                r = codec.seal(mid, "refresh_token", token)
                assert codec.open(mid, "access_token", a) == token
                assert codec.open(mid, "refresh_token", r) == token
            return (time.perf_counter() - t0) / items

        cached = KmsCodec(key_id, lambda: kms)
        round_trip(cached)  # warm: the data key is fetched once
        warm = round_trip(cached)
        uncached = round_trip(KmsCodec(key_id, lambda: kms, ttl_s=0.0))

        ddb.put_item(TableName=table, Item={"pk": {"S": "PORTAL#m0"}, "a": {"S": "x" * 200}})
        t0 = time.perf_counter()
        for _ in range(items):
            ddb.get_item(TableName=table, Key={"pk": {"S": "PORTAL#m0"}}, ConsistentRead=True)
        read = (time.perf_counter() - t0) / items
        floor_name = "one GetItem of the record on DynamoDB Local"
        extra: dict[str, Any] = {"items": items, "kms_calls_cached": cached.kms_calls}
        for name, value in (("cached", warm), ("uncached", uncached)):
            us, floor_us = value * 1e6, read * 1e6
            report("token_crypto", f"seal_open_per_record_{name}", us, "us", floor_us, floor_name, **extra)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--cold-only", action="store_true")
    args = parser.parse_args()
    sys.path[:0] = [str(LAYER_DIR), str(ROOT / "local")]
    cold_start(args.rounds)
    if "--cold-only" not in sys.argv:
        per_item(args.items)

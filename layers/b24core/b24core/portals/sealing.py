"""Token values at rest: sealed with a KMS envelope, or (application tokens) kept only as a hash.

Read access to the table, a backup or an export must yield no usable token (issue 10):

* Access and refresh tokens and a webhook's code are *sealed*: AES-256-GCM under a data key that KMS
  issued for the stack's TokenKey (``GenerateDataKey``), stored beside the ciphertext encrypted by KMS.
  The GCM associated data is the portal's member_id and the attribute name, so a ciphertext copied to
  another portal's item, or to another attribute, fails to open (no swapping between portals).
* A warm process reuses one data key for a while and remembers the keys it decrypted, so a warm Lambda
  does not call KMS per item (the caching the AWS Encryption SDK's caching CMM gives, without its import
  cost or its own botocore clients, which the local stack and the IAM recorder could not see).
* The application_token is only ever compared, never sent: the table keeps its SHA-256 (it is 128 random
  bits, so a plain hash cannot be reversed by guessing), and intake compares hashes in constant time, so
  the internet-facing EventsFunction needs no key and no crypto import.

Values written by the previous version (plaintext) still read as they are and are sealed or hashed on
the next save. A process without the key (the CLI, EventsFunction) uses ``PlainCodec``: it leaves sealed
values sealed (never decrypts) and never writes a new token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

SEALED_PREFIX = "b24e1:"
HASH_PREFIX = "sha256:"
#: KMS encryption context of every data key: binds the key to this use (visible in CloudTrail).
KMS_CONTEXT = {"purpose": "b24-portal-token"}


class SealError(RuntimeError):
    """A sealed value cannot be opened here (wrong portal or attribute, tampered, or no key)."""


def is_sealed(value: str) -> bool:
    return value.startswith(SEALED_PREFIX)


def hash_token(value: str) -> str:
    """What the table keeps of an application_token; already-hashed and empty values pass through."""
    if not value or value.startswith(HASH_PREFIX):
        return value
    return _digest(value)


def _digest(value: str) -> str:
    return HASH_PREFIX + hashlib.sha256(value.encode()).hexdigest()


def token_matches(stored: str, given: str) -> bool:
    """Constant-time: does ``given`` (from a request) prove the ``stored`` token (hash, or legacy value)?"""
    if not stored or not given:
        return False
    if stored.startswith(HASH_PREFIX):
        # Always hash what was given: someone who read the table must not pass its hash as the token.
        return hmac.compare_digest(stored.encode(), _digest(given).encode())
    return hmac.compare_digest(stored.encode(), given.encode())  # written before hashing (migration)


class TokenCodec(Protocol):
    def seal(self, member_id: str, attr: str, value: str) -> str: ...

    def open(self, member_id: str, attr: str, stored: str) -> str: ...


class PlainCodec:
    """No key in this process: read legacy plaintext, keep sealed values sealed, never decrypt."""

    def seal(self, member_id: str, attr: str, value: str) -> str:
        return value

    def open(self, member_id: str, attr: str, stored: str) -> str:
        return stored


def _aad(member_id: str, attr: str) -> bytes:
    return f"b24e1|{member_id}|{attr}".encode()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class KmsCodec:
    """Envelope encryption under a KMS key, with a per-process data-key cache.

    ``client`` is a boto3 KMS client (made on first use by ``client_factory``). A data key seals at most
    ``max_uses`` values and lives ``ttl_s`` seconds; decrypted data keys are remembered ``ttl_s``.
    """

    def __init__(
        self,
        key_id: str,
        client_factory: Callable[[], Any],
        ttl_s: float = 300.0,
        max_uses: int = 10_000,
        max_entries: int = 1000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.key_id = key_id
        self._client_factory = client_factory
        self._client: Any = None
        self.ttl_s = ttl_s
        self.max_uses = max_uses
        self.max_entries = max_entries
        self.clock = clock
        self._lock = threading.Lock()
        self._cache: dict[bytes, tuple[float, bytes]] = {}  # encrypted data key -> (expires, plaintext)
        self._current: tuple[float, int, bytes, bytes] | None = None  # expires, uses, edk, key
        self.kms_calls = 0

    def _kms(self) -> Any:
        if self._client is None:
            self._client = self._client_factory()
        return self._client

    def _data_key(self) -> tuple[bytes, bytes]:
        now = self.clock()
        with self._lock:
            cur = self._current
            if cur is not None and cur[0] > now and cur[1] < self.max_uses:
                self._current = (cur[0], cur[1] + 1, cur[2], cur[3])
                return cur[2], cur[3]
        self.kms_calls += 1
        answer = self._kms().generate_data_key(
            KeyId=self.key_id, KeySpec="AES_256", EncryptionContext=KMS_CONTEXT
        )
        edk, key = bytes(answer["CiphertextBlob"]), bytes(answer["Plaintext"])
        with self._lock:
            self._current = (now + self.ttl_s, 1, edk, key)
            self._remember(edk, key, now)
        return edk, key

    def _remember(self, edk: bytes, key: bytes, now: float) -> None:
        if len(self._cache) >= self.max_entries:
            self._cache.clear()
        self._cache[edk] = (now + self.ttl_s, key)

    def _key_for(self, edk: bytes) -> bytes:
        now = self.clock()
        with self._lock:
            hit = self._cache.get(edk)
            if hit is not None and hit[0] > now:
                return hit[1]
        self.kms_calls += 1
        try:
            answer = self._kms().decrypt(CiphertextBlob=edk, KeyId=self.key_id, EncryptionContext=KMS_CONTEXT)
        except Exception as exc:  # botocore's ClientError: never echo the blob
            raise SealError(f"KMS refused the data key ({type(exc).__name__})") from None
        key = bytes(answer["Plaintext"])
        with self._lock:
            self._remember(edk, key, now)
        return key

    def seal(self, member_id: str, attr: str, value: str) -> str:
        if not value or is_sealed(value):
            return value
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        edk, key = self._data_key()
        nonce = os.urandom(12)
        body = AESGCM(key).encrypt(nonce, value.encode(), _aad(member_id, attr))
        return f"{SEALED_PREFIX}{_b64(edk)}.{_b64(nonce + body)}"

    def open(self, member_id: str, attr: str, stored: str) -> str:
        if not is_sealed(stored):
            return stored  # plaintext written before sealing (migration): sealed on the next save
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        try:
            edk_text, body_text = stored[len(SEALED_PREFIX) :].split(".", 1)
            edk, body = _unb64(edk_text), _unb64(body_text)
        except ValueError:
            raise SealError(f"{attr} of {member_id}: malformed sealed value") from None
        key = self._key_for(edk)
        try:
            return AESGCM(key).decrypt(body[:12], body[12:], _aad(member_id, attr)).decode()
        except (InvalidTag, ValueError):
            raise SealError(f"{attr} of {member_id}: does not open for this portal and attribute") from None


class SealOnlyCodec(KmsCodec):
    """Seals new tokens (kms:GenerateDataKey) but never opens one: for EventsFunction, which stores the
    pair an ONAPPUPDATE or a healing ONOFFLINEEVENT brings yet must not be able to read any token."""

    def open(self, member_id: str, attr: str, stored: str) -> str:
        return stored


class LocalKeyClient:
    """An in-process stand-in for KMS for pure unit tests: same calls, a fixed master key."""

    def __init__(self) -> None:
        self._master = os.urandom(32)
        self.calls: list[str] = []

    def generate_data_key(self, **kw: Any) -> dict[str, bytes]:
        self.calls.append("GenerateDataKey")
        key = os.urandom(32)
        return {"Plaintext": key, "CiphertextBlob": self._wrap(key, kw["EncryptionContext"])}

    def decrypt(self, **kw: Any) -> dict[str, bytes]:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self.calls.append("Decrypt")
        blob, ctx = kw["CiphertextBlob"], repr(sorted(kw["EncryptionContext"].items())).encode()
        return {"Plaintext": AESGCM(self._master).decrypt(blob[:12], blob[12:], ctx)}

    def _wrap(self, key: bytes, context: dict[str, str]) -> bytes:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        nonce = os.urandom(12)
        return nonce + AESGCM(self._master).encrypt(nonce, key, repr(sorted(context.items())).encode())


def codec_for(key_id: str, client_factory: Callable[[], Any], seal_only: bool = False) -> TokenCodec:
    """KmsCodec when the function was given the key (template.yaml: B24_TOKEN_KEY_ID), SealOnlyCodec when
    it may only seal (B24_TOKEN_KEY_MODE=seal), else PlainCodec. Nothing is imported or called until used."""
    if not key_id:
        return PlainCodec()
    return SealOnlyCodec(key_id, client_factory) if seal_only else KmsCodec(key_id, client_factory)

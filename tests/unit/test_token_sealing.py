"""The token codec (b24core.portals.sealing) with an in-process key provider: no sockets."""

from __future__ import annotations

import pytest

from b24core.portals.sealing import (
    HASH_PREFIX,
    KmsCodec,
    LocalKeyClient,
    PlainCodec,
    SealError,
    codec_for,
    hash_token,
    is_sealed,
    token_matches,
)

SECRET = "a1b2c3d4e5f60718293a4b5c6d7e8f90"


def _codec(client: LocalKeyClient | None = None, **kw: object) -> KmsCodec:
    kms = client or LocalKeyClient()
    return KmsCodec("alias/test", lambda: kms, **kw)  # type: ignore[arg-type]


def test_sealed_value_opens_for_its_portal_and_attribute_and_hides_the_token() -> None:
    codec = _codec()
    sealed = codec.seal("m1", "refresh_token", SECRET)
    assert is_sealed(sealed) and SECRET not in sealed
    assert codec.open("m1", "refresh_token", sealed) == SECRET


def test_ciphertext_copied_to_another_portal_fails_to_open() -> None:
    codec = _codec()
    sealed = codec.seal("m1", "access_token", SECRET)
    with pytest.raises(SealError) as err:
        codec.open("m2", "access_token", sealed)
    assert SECRET not in str(err.value)


def test_ciphertext_moved_to_another_attribute_fails_to_open() -> None:
    codec = _codec()
    sealed = codec.seal("m1", "access_token", SECRET)
    with pytest.raises(SealError):
        codec.open("m1", "refresh_token", sealed)


def test_tampered_ciphertext_fails_to_open() -> None:
    codec = _codec()
    sealed = codec.seal("m1", "access_token", SECRET)
    flipped = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
    with pytest.raises(SealError):
        codec.open("m1", "access_token", flipped)


def test_another_process_opens_with_the_same_key_through_kms() -> None:
    kms = LocalKeyClient()
    sealed = _codec(kms).seal("m1", "refresh_token", SECRET)
    reader = _codec(kms)
    assert reader.open("m1", "refresh_token", sealed) == SECRET
    assert kms.calls == ["GenerateDataKey", "Decrypt"]


def test_warm_process_calls_kms_once_for_many_items() -> None:
    kms = LocalKeyClient()
    codec = _codec(kms)
    sealed = [codec.seal(f"m{i}", "access_token", f"{SECRET}{i}") for i in range(50)]
    reader = _codec(kms)
    assert [reader.open(f"m{i}", "access_token", s) for i, s in enumerate(sealed)] == [
        f"{SECRET}{i}" for i in range(50)
    ]
    assert kms.calls == ["GenerateDataKey", "Decrypt"]


def test_data_key_is_renewed_after_its_uses_and_its_time() -> None:
    kms = LocalKeyClient()
    now = [0.0]
    codec = _codec(kms, max_uses=2, ttl_s=10.0, clock=lambda: now[0])
    for _ in range(3):
        codec.seal("m1", "access_token", SECRET)
    assert kms.calls.count("GenerateDataKey") == 2
    now[0] = 11.0
    codec.seal("m1", "access_token", SECRET)
    assert kms.calls.count("GenerateDataKey") == 3


def test_plaintext_from_the_previous_version_reads_as_is() -> None:
    assert _codec().open("m1", "refresh_token", SECRET) == SECRET


def test_sealing_is_idempotent_so_unopened_values_survive_a_save() -> None:
    codec = _codec()
    sealed = codec.seal("m1", "refresh_token", SECRET)
    assert codec.seal("m1", "refresh_token", sealed) == sealed
    assert PlainCodec().seal("m1", "refresh_token", sealed) == sealed


def test_without_a_key_nothing_is_decrypted() -> None:
    kms = LocalKeyClient()
    sealed = _codec(kms).seal("m1", "refresh_token", SECRET)
    plain = codec_for("", lambda: kms)
    assert isinstance(plain, PlainCodec)
    assert plain.open("m1", "refresh_token", sealed) == sealed
    assert kms.calls == ["GenerateDataKey"]


def test_application_token_is_kept_as_a_hash_and_compared_against_it() -> None:
    stored = hash_token(SECRET)
    assert stored.startswith(HASH_PREFIX) and SECRET not in stored
    assert hash_token(stored) == stored
    assert token_matches(stored, SECRET)
    assert not token_matches(stored, SECRET[:-1] + "1")
    assert not token_matches(stored, stored)  # the hash itself is no proof
    assert not token_matches("", "")


def test_a_legacy_plaintext_application_token_still_matches() -> None:
    assert token_matches(SECRET, SECRET)
    assert not token_matches(SECRET, "other")


def test_a_seal_only_process_seals_new_tokens_but_never_decrypts() -> None:
    kms = LocalKeyClient()
    sealer = codec_for("alias/test", lambda: kms, seal_only=True)
    sealed = sealer.seal("m1", "refresh_token", SECRET)
    assert is_sealed(sealed) and SECRET not in sealed
    assert sealer.open("m1", "refresh_token", sealed) == sealed
    assert kms.calls == ["GenerateDataKey"]
    assert _codec(kms).open("m1", "refresh_token", sealed) == SECRET

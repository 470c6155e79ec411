"""The card fingerprint secret rotates: separate keys per purpose, fingerprints that keep
matching across a rotation, ids and idempotency that do not depend on the rotating key."""
from __future__ import annotations

import json
import uuid

import pytest

from tests.functions.conftest import (
    LambdaContext,
    api_event,
    batch_key,
    fresh_card,
    load_app,
    new_key,
    payment_body,
    rotate_secret,
)

BATCH_BUCKET = "payments-test-batch"
HEADER = "merchant_reference,customer_id,amount,currency,card_number,exp_month,exp_year"


def test_hkdf_matches_rfc_5869_test_case_1():
    from paylib import keys
    okm = keys.hkdf_sha256(bytes([0x0B] * 22), salt=bytes(range(0x0D)), info=bytes(range(0xF0, 0xFA)), length=42)
    assert okm.hex() == ("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865")


def test_each_purpose_has_its_own_key(own_secret):
    from paylib import keys
    version = keys.keyring().current
    derived = {version.fingerprint_key, version.request_hash_key}
    assert len(derived) == 2
    assert version.secret not in derived


def pay(app, card: str, **overrides) -> dict:
    body = payment_body(customer_id=f"cus_{uuid.uuid4().hex[:10]}", billing_country=None,
                        card={"number": card, "exp_month": 1, "exp_year": 2031}, **overrides)
    answer = app.handler(api_event("POST", "/payments", body=body, headers={"Idempotency-Key": new_key()}), LambdaContext())
    assert answer["statusCode"] == 201, answer
    return json.loads(answer["body"])


def test_card_velocity_keeps_counting_across_a_rotation_in_the_middle_of_traffic(aws, own_secret):
    app = load_app("payment_api")
    card = fresh_card()
    before = [pay(app, card) for _ in range(3)]
    rotate_secret(own_secret)
    after = [pay(app, card) for _ in range(2)]
    assert [payment["status"] for payment in before + after] == ["approved"] * 4 + ["review"]
    assert after[-1]["risk"]["reasons"] == ["CARD_VELOCITY"]


def test_a_function_still_on_the_old_key_sees_payments_counted_under_the_new_one(aws, own_secret, monkeypatch):
    """During a rotation some functions have refreshed their keys and others have not (cache)."""
    from paylib import keys
    app = load_app("payment_api")
    card = fresh_card()
    old_ring = keys.keyring()
    rotate_secret(own_secret)
    new_ring = keys.keyring()
    assert new_ring.current.version_id != old_ring.current.version_id
    statuses = [pay(app, card)["status"] for _ in range(3)]  # counted by refreshed functions
    monkeypatch.setattr(keys, "keyring", lambda: old_ring)  # a function that has not refreshed yet
    statuses += [pay(app, card)["status"] for _ in range(2)]
    assert statuses == ["approved"] * 4 + ["review"]


def upload(aws, text: str) -> dict:
    key = batch_key()
    answer = aws.s3.put_object(Bucket=BATCH_BUCKET, Key=key, Body=text.encode())
    return {"detail": {"bucket": {"name": BATCH_BUCKET},
                       "object": {"key": key, "version-id": answer.get("VersionId"), "sequencer": uuid.uuid4().hex}}}


def test_a_file_uploaded_again_after_a_rotation_creates_no_payment(aws, own_secret):
    ingestion = load_app("batch_ingestion")
    rows = [f"rot-{uuid.uuid4().hex[:6]},cus_{uuid.uuid4().hex[:8]},1500,EUR,{fresh_card()},12,2031" for _ in range(3)]
    text = "\n".join([HEADER] + rows) + "\n"
    first = ingestion.handler(upload(aws, text), LambdaContext())
    assert first["counts"] == {"total": 3, "accepted": 3, "rejected": 0, "duplicate": 0}
    rotate_secret(own_secret)
    second = ingestion.handler(upload(aws, text), LambdaContext())
    assert second["counts"] == {"total": 3, "accepted": 0, "rejected": 0, "duplicate": 3}


@pytest.mark.parametrize("rotations", [1, 2])
def test_payment_ids_do_not_depend_on_the_key(aws, own_secret, rotations):
    from paylib import identity
    before = identity.batch_payment_id("mer_" + "1" * 24, "cus_1", "ref-1")
    for _ in range(rotations):
        rotate_secret(own_secret)
    assert identity.batch_payment_id("mer_" + "1" * 24, "cus_1", "ref-1") == before

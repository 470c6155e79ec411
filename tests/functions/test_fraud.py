"""Fraud rules: velocity per customer and card over sliding windows (counted exactly once),
amount anomaly, country mismatch, and their effect through POST /payments."""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone


from paylib import fraud
from tests.functions.conftest import api_event, fresh_card, new_key, payment_body


def candidate(**overrides):
    values = dict(payment_id=f"pay_{uuid.uuid4().hex[:24]}", customer_id=f"cus_{uuid.uuid4().hex[:8]}",
                  card_fingerprint=uuid.uuid4().hex, amount=1000, currency="EUR", billing_country="FR")
    values.update(overrides)
    return fraud.Candidate(**values)


def history(amounts, country="FR", currency="EUR"):
    return [{"payment_id": f"pay_{i:024d}", "amount": amount, "currency": currency, "status": "settled",
             "billing_country": country} for i, amount in enumerate(amounts)]


def test_clean_payment_is_low_risk():
    risk = fraud.score(candidate(), history([900, 1000, 1100]), {})
    assert (risk.score, risk.level, risk.reasons, risk.decision) == (0, "low", [], "approve")


def test_amount_anomaly_against_the_median_of_the_same_currency():
    assert fraud.score(candidate(amount=5001), history([1000, 900, 1100]), {}).reasons == ["AMOUNT_ANOMALY"]
    assert fraud.score(candidate(amount=5000), history([1000, 900, 1100]), {}).reasons == []
    assert fraud.score(candidate(amount=5001), history([1000, 900, 1100], currency="USD"), {}).reasons == []
    assert fraud.score(candidate(amount=5001), history([1000, 900]), {}).reasons == []


def test_country_mismatch_against_earlier_countries():
    assert fraud.score(candidate(billing_country="BR"), history([1000]), {}).reasons == ["COUNTRY_MISMATCH"]
    assert fraud.score(candidate(billing_country=None), history([1000]), {}).reasons == []


def test_velocity_thresholds_and_levels():
    risk = fraud.score(candidate(), history([1000]), {"customer": {600: 6, 86400: 6}, "card": {600: 4, 86400: 4}})
    assert risk.reasons == ["CUSTOMER_VELOCITY", "CARD_VELOCITY"]
    assert (risk.score, risk.level, risk.decision) == (85, "high", "decline")
    risk = fraud.score(candidate(), history([1000]), {"customer": {600: 5, 86400: 31}})
    assert (risk.reasons, risk.level, risk.decision) == (["CUSTOMER_VELOCITY"], "medium", "review")


def test_score_is_capped_at_100():
    risk = fraud.score(candidate(amount=90_000_000, billing_country="BR"), history([1000, 1000, 1000]),
                       {"customer": {600: 9}, "card": {600: 9}})
    assert risk.score == 100


def test_counters_slide_and_count_each_payment_once(aws):
    now = datetime(2026, 11, 23, 12, 0, 30, tzinfo=timezone.utc)
    customer, card = f"cus_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    old = candidate(customer_id=customer, card_fingerprint=card)
    fraud.record(old, now - timedelta(minutes=30))
    recent = [candidate(customer_id=customer, card_fingerprint=card) for _ in range(3)]
    for item in recent:
        assert fraud.record(item, now - timedelta(minutes=2)) == 2
        assert fraud.record(item, now - timedelta(minutes=2)) == 0  # a retry is not counted again
    probe = candidate(customer_id=customer, card_fingerprint=card)
    counts = fraud.velocity_counts(probe, now)
    assert counts["customer"] == {600: 3, 86400: 4}
    assert counts["card"] == {600: 3, 86400: 4}
    later = fraud.velocity_counts(probe, now + timedelta(minutes=9))
    assert later["customer"][600] == 0  # the 10-minute window slid past the three payments
    assert fraud.velocity_counts(recent[0], now)["customer"][600] == 2  # a payment never counts itself


def test_card_velocity_moves_payments_to_review_then_decline(aws, context):
    from tests.functions.conftest import load_app
    app = load_app("payment_api")
    card = fresh_card()
    statuses, reasons = [], []
    for index in range(5):
        body = payment_body(customer_id=f"cus_{uuid.uuid4().hex[:10]}", billing_country=None,
                            card={"number": card, "exp_month": 1, "exp_year": 2031})
        answer = app.handler(api_event("POST", "/payments", body=body, headers={"Idempotency-Key": new_key()}), context)
        payment = json.loads(answer["body"])
        statuses.append(payment["status"])
        reasons.append(payment["risk"]["reasons"])
    assert statuses == ["approved"] * 4 + ["review"]
    assert reasons[-1] == ["CARD_VELOCITY"]
    customer = f"cus_{uuid.uuid4().hex[:10]}"
    for index in range(7):
        body = payment_body(customer_id=customer, card={"number": fresh_card(), "exp_month": 1, "exp_year": 2031},
                            amount=1000 + index)
        answer = app.handler(api_event("POST", "/payments", body=body, headers={"Idempotency-Key": new_key()}), context)
        last = json.loads(answer["body"])
    assert "CUSTOMER_VELOCITY" in last["risk"]["reasons"]


def test_declined_payment_is_not_queued(aws, context):
    from tests.functions.conftest import load_app, queued_bodies
    app = load_app("payment_api")
    customer = f"cus_{uuid.uuid4().hex[:10]}"
    card = fresh_card()
    for index in range(8):
        body = payment_body(customer_id=customer, card={"number": card, "exp_month": 1, "exp_year": 2031})
        payment = json.loads(app.handler(api_event("POST", "/payments", body=body, headers={"Idempotency-Key": new_key()}), context)["body"])
    assert payment["status"] == "declined"
    queued = [json.loads(body) for body in queued_bodies("payments-test-queue")]
    assert all(payment["payment_id"] not in message["payment_ids"] for message in queued)

"""Fraud rules: velocity per customer and card over sliding windows (counted exactly once),
amount anomaly, country mismatch, and their effect through POST /payments."""
from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
from paylib import fraud

from tests.functions.conftest import api_event, fresh_card, new_key, payment_body


def candidate(**overrides):
    values = dict(merchant_id="mer_" + "f" * 24, payment_id=f"pay_{uuid.uuid4().hex[:24]}", customer_id=f"cus_{uuid.uuid4().hex[:8]}",
                  card_fingerprints=(uuid.uuid4().hex,), amount=1000, currency="EUR", billing_country="FR")
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


def test_counters_slide_and_count_each_payment_once():
    now = int(datetime(2026, 11, 23, 12, 0, 30, tzinfo=UTC).timestamp())
    counter = fraud.Counter("card#x").with_event(now - 30 * 60, "pay_old")
    recent = [f"pay_recent{index}" for index in range(3)]
    for payment_id in recent:
        counter = counter.with_event(now - 120, payment_id)
        assert counter.with_event(now - 120, payment_id) == counter  # a retry is not counted again
    assert fraud.velocity_counts({"card": [counter]}, "pay_probe", now)["card"] == {600: 3, 86400: 4}
    later = fraud.velocity_counts({"card": [counter]}, "pay_probe", now + 9 * 60)
    assert later["card"][600] == 0  # the 10-minute window slid past the three payments
    assert fraud.velocity_counts({"card": [counter]}, recent[0], now)["card"][600] == 2  # never counts itself


def test_counters_keep_what_the_rules_need_and_no_more():
    now = 1_800_000_000
    counter = fraud.Counter("customer#c").with_event(now - 86400 - 5, "pay_day_old")
    assert counter.with_event(now, "pay_new").events == ((now, "pay_new"),)  # older than every window: dropped
    for index in range(fraud.MAX_EVENTS + 10):
        counter = counter.with_event(now + index, f"pay_{index:04d}")
    assert len(counter.events) == fraud.MAX_EVENTS
    counts = fraud.velocity_counts({"customer": [counter]}, "pay_probe", now + 100)
    assert all(count > limit for (window, limit, _), count in
               zip(fraud.VELOCITY_LIMITS["customer"], counts["customer"].values(), strict=False))  # still over every limit


def test_a_card_counted_under_two_key_versions_is_counted_once():
    old, new = fraud.Counter("card#old"), fraud.Counter("card#new")
    old = old.with_event(100, "pay_a").with_event(200, "pay_b")
    new = new.with_event(200, "pay_b").with_event(300, "pay_c")
    assert fraud.velocity_counts({"card": [new, old]}, "pay_probe", 400)["card"][600] == 3


def test_a_counter_write_fails_when_the_counter_moved_on(aws):
    from paylib import dynamo
    name = f"card#{uuid.uuid4().hex}"
    probe = candidate(card_fingerprints=(name.split("#", 1)[1],))
    first = fraud.read_counters(probe)["card"][0]
    assert first.version == 0
    dynamo.transact_write([fraud.counter_put(first.with_event(1_800_000_000, "pay_a"), first.version)])
    stored = fraud.read_counters(probe)["card"][0]
    assert (stored.version, stored.events) == (1, ((1_800_000_000, "pay_a"),))
    with pytest.raises(dynamo.Cancelled) as stale:
        dynamo.transact_write([fraud.counter_put(first.with_event(1_800_000_001, "pay_b"), first.version)])
    assert stale.value.failed(0)
    assert fraud.read_counters(probe)["card"][0] == stored


def test_card_velocity_moves_payments_to_review_then_decline(aws, context):
    from tests.functions.conftest import load_app
    app = load_app("payment_api")
    card = fresh_card()
    statuses, reasons = [], []
    for _ in range(5):
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
    for _index in range(8):
        body = payment_body(customer_id=customer, card={"number": card, "exp_month": 1, "exp_year": 2031})
        payment = json.loads(app.handler(api_event("POST", "/payments", body=body, headers={"Idempotency-Key": new_key()}), context)["body"])
    assert payment["status"] == "declined"
    queued = [json.loads(body) for body in queued_bodies("payments-test-queue")]
    assert all(payment["payment_id"] not in message["payment_ids"] for message in queued)


def test_a_card_fingerprint_repeated_across_key_versions_names_one_counter():
    probe = candidate(card_fingerprints=("same", "same"))
    assert fraud.counter_names(probe)["card"] == ["card#same"]

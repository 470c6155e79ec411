"""Property: whatever JSON body and headers reach POST /payments, the answer is a 2xx or 4xx
in the error shape, no exception escapes, and a refused request writes nothing."""
from __future__ import annotations

import json
import string

from hypothesis import HealthCheck, example, given, settings
from hypothesis import event as record_event
from hypothesis import strategies as st

from tests.functions.conftest import api_event, fresh_card, load_app, payment_body, queue_depths, register_number, table_counts

json_scalars = st.none() | st.booleans() | st.integers(min_value=-(10**20), max_value=10**20) | \
    st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30)
json_values = st.recursive(json_scalars, lambda children: st.lists(children, max_size=4) |
                           st.dictionaries(st.text(max_size=12), children, max_size=4), max_leaves=12)
card_numbers = st.text(alphabet=string.digits, min_size=12, max_size=20) | st.sampled_from(["4242424242424242", "5555555555554444"])


@st.composite
def near_valid_bodies(draw):
    """A valid body with one or two fields replaced by arbitrary JSON (reaches the deep checks)."""
    rng = draw(st.randoms(use_true_random=False))
    body = payment_body(card={"number": fresh_card(rng=rng), "exp_month": 12, "exp_year": 2030})
    for _ in range(draw(st.integers(min_value=0, max_value=2))):
        field = draw(st.sampled_from(["amount", "currency", "customer_id", "card", "metadata", "description",
                                      "merchant_reference", "ip_address", "billing_country", "extra", "card.number",
                                      "card.exp_month", "card.exp_year", "card.cvc"]))
        value = draw(card_numbers if field == "card.number" else json_values)
        if field.startswith("card."):
            if isinstance(body.get("card"), dict):
                body["card"][field.split(".")[1]] = value
        else:
            body[field] = value
    if draw(st.integers(min_value=0, max_value=3)) == 0:
        body.pop(draw(st.sampled_from(sorted(body))), None)
    return body


bodies = json_values | near_valid_bodies() | near_valid_bodies()
valid_keys = st.text(alphabet=string.ascii_letters + string.digits + "-_", min_size=1, max_size=40)
idempotency_keys = st.none() | st.text(max_size=300) | valid_keys | valid_keys
content_types = st.sampled_from(["application/json", "application/json", "application/json; charset=utf-8", "text/plain",
                                 "", "APPLICATION/JSON"])


def _register_numbers(body) -> None:
    """The scanner looks for every card number a request carried (digits in card.number)."""
    card = body.get("card") if isinstance(body, dict) else None
    if isinstance(card, dict) and isinstance(card.get("number"), str):
        register_number(card["number"])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(body=bodies, key=idempotency_keys, content_type=content_types, as_text=st.booleans())
@example(body={"amount": 995, "currency": "GBP", "customer_id": "cus_example", "card": {
    "number": "5555555555554444", "exp_month": 3, "exp_year": 2031}}, key="example-key", content_type="application/json",
    as_text=True)
def test_post_payments_never_fails_and_refusals_write_nothing(aws, context, schema_validator, body, key, content_type, as_text):
    _register_numbers(body)
    app = load_app("payment_api")
    headers = {"Content-Type": content_type}
    if key is not None:
        headers["Idempotency-Key"] = key
    raw = json.dumps(body) if as_text or not isinstance(body, str) else body
    event = api_event("POST", "/payments", raw_body=raw, headers=headers)
    tables, queues = table_counts(aws), queue_depths()
    answer = app.handler(event, context)
    status = answer["statusCode"]
    record_event(f"status {status} {json.loads(answer['body']).get('error', {}).get('code', '')}")
    assert status < 500, answer
    payload = json.loads(answer["body"])
    if status >= 400:
        assert set(payload) == {"error"} and set(payload["error"]) == {"code", "message", "field"}
        schema_validator("Error", payload)
        assert table_counts(aws) == tables and queue_depths() == queues
    else:
        assert status == 201
        schema_validator("Payment", payload)
    assert "number" not in payload.get("card", {})

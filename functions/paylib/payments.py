"""Creating a payment: the one code path behind POST /payments.

Round trips on the create path (each one is a request to AWS, in this order):
1. BatchGetItem (consistent): the idempotency record and the velocity counters of the customer
   and the card. A live record of the same request is answered from here (a replay); of
   another request, 422.
2. Query: the customer's recent payments (history rules).
3. TransactWriteItems: the payment, its idempotency record (already holding the answer) and the
   counted velocity events, all or nothing, each conditional: the payment id is new, no live
   record holds the key, every counter is still at the version read in 1. A failed condition
   writes nothing; the request reads again and is decided again (a concurrent request counted
   first, or finished first and is replayed).
4. SendMessage: an approved payment goes to the settlement queue.
A crash anywhere before 3 leaves nothing behind; after 3, the client's retry is a replay, and a
replay of an approved payment is queued again (settlement is a conditional state change, so a
second message is harmless), which also covers a crash between 3 and 4.
"""
from __future__ import annotations

import time
from datetime import datetime

from . import dynamo, fraud, idempotency, identity, keys, repository, settlement_queue
from .errors import ApiError
from .observability import MetricUnit, logger, metrics
from .shapes import Item, JsonObject
from .validation import PaymentRequest

OPERATION = "create-payment"
# Each attempt that loses a race lets the winner's payment be counted, so under contention on
# one card or customer an attempt is lost at most once per concurrent request.
MAX_ATTEMPTS = 12


def create_payment(request: PaymentRequest, body: JsonObject, merchant_id: str, idempotency_key: str,
                   now: datetime | None = None) -> tuple[int, JsonObject]:
    started = time.monotonic()
    now = now or repository.utc_now()
    ring = keys.keyring()
    record_key = identity.idempotency_record_key(merchant_id, OPERATION, idempotency_key)
    candidate = fraud.candidate_for(merchant_id, request, identity.new_payment_id(), ring)
    for _ in range(MAX_ATTEMPTS):
        record, counters = _read(record_key, candidate)
        replay = idempotency.replay_of(record, request, body, ring, int(now.timestamp()))
        if replay is not None:
            return _replayed(replay)
        item = _decide(request, candidate, counters, now)
        try:
            _write(item, candidate, counters, record_key, request, ring, now)
        except dynamo.Cancelled as cancelled:
            if cancelled.failed(0):  # a payment with this id exists: draw another id
                candidate = fraud.candidate_for(merchant_id, request, identity.new_payment_id(), ring)
            continue
        return _created(item, started)
    raise ApiError(409, "request_in_progress", "too many concurrent requests for this customer or card; retry",
                   "Idempotency-Key")


def _read(record_key: str, candidate: fraud.Candidate) -> tuple[Item | None, dict[str, list[fraud.Counter]]]:
    names = fraud.counter_names(candidate)
    counter_keys = [fraud.counter_key(name) for kind in names.values() for name in kind]
    found = dynamo.batch_get({idempotency.table_name(): [{"idempotency_key": {"S": record_key}}],
                              fraud.velocity_table(): counter_keys})
    records = found[idempotency.table_name()]
    counters = fraud.counters_of(names, {item["counter_key"]: item for item in found[fraud.velocity_table()]})
    return (records[0] if records else None), counters


def _decide(request: PaymentRequest, candidate: fraud.Candidate, counters: dict[str, list[fraud.Counter]],
            now: datetime) -> Item:
    history = repository.customer_history(candidate.merchant_id, request.customer_id)
    velocity = fraud.velocity_counts(counters, candidate.payment_id, int(now.timestamp()))
    risk = fraud.score(candidate, history, velocity)
    return repository.build_item(candidate.merchant_id, request, candidate.payment_id, risk, candidate.card_fingerprints,
                                 repository.iso(now), "api")


def _write(item: Item, candidate: fraud.Candidate, counters: dict[str, list[fraud.Counter]], record_key: str,
           request: PaymentRequest,
           ring: keys.Keyring, now: datetime) -> None:
    epoch = int(now.timestamp())
    view = repository.representation(repository.expand(dict(item)))
    hashed = idempotency.request_hash(request, ring.current)
    actions = [
        repository.create_action(item),
        idempotency.record_write(record_key, hashed, ring.current.version_id, 201, view, epoch),
    ]
    actions += [fraud.counter_put(counter.with_event(epoch, candidate.payment_id), counter.version)
                for kind in counters.values() for counter in kind]
    dynamo.transact_write(actions)


def _created(item: Item, started: float) -> tuple[int, JsonObject]:
    payment = repository.expand(dict(item))
    _count_decision(payment["status"])
    logger.info("payment created", extra={"payment_id": payment["payment_id"], "status": payment["status"],
                                          "risk_score": payment["risk"]["score"], "reasons": payment["risk"]["reasons"]})
    if payment["status"] == "approved":
        settlement_queue.enqueue_for_settlement([payment["payment_id"]])
    metrics.add_metric(name="ProcessingTime", unit=MetricUnit.Milliseconds, value=int((time.monotonic() - started) * 1000))
    return 201, repository.representation(payment)


def _replayed(replay: idempotency.Replay) -> tuple[int, JsonObject]:
    logger.info("idempotent replay", extra={"payment_id": replay.body.get("payment_id")})
    if replay.body.get("status") == "approved":  # the answer of a created payment: it names the payment
        settlement_queue.enqueue_for_settlement([str(replay.body["payment_id"])])  # covers a crash between the write and the first send
    return replay.status, replay.body


def _count_decision(status: str) -> None:
    if status == "declined":
        metrics.add_metric(name="PaymentsDeclined", unit=MetricUnit.Count, value=1)
    elif status == "approved":
        metrics.add_metric(name="PaymentsAccepted", unit=MetricUnit.Count, value=1)

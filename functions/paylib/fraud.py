"""Fraud screening: velocity, amount anomaly, country mismatch; score, level, decision.

Design decisions:
- Velocity: one rolling counter item per counter (`customer#<id>`, `card#<keyed fingerprint>`,
  sort key `window_start` = 0) holding the payments of the last 24 h as (epoch second, payment
  id) events, at most MAX_EVENTS of them (the most recent). That is exact for every rule: a
  window holds more than its limit exactly when the kept events in it do, because MAX_EVENTS is
  one more than the largest limit. Windows slide by the second.
- Check and count are one atomic step: the counters are read (with the rest of what a decision
  needs, in one BatchGetItem), the payment is scored, and the new events are written in the same
  TransactWriteItems as the payment itself, each counter conditional on the version that was
  read. If another payment was counted in between, the transaction is cancelled and the request
  is scored again on the new state, so concurrent payments on one card or customer are counted
  one after the other and exactly `limit` of them pass a limit. A payment never counts itself,
  and adding an event is idempotent on the payment id.
- Key rotation: a card has one counter per live fingerprint key version. Reads merge them
  (events are de-duplicated by payment id); writes add the event to all of them, so a function
  that has not refreshed its keys yet still sees every payment.
- Amount anomaly compares with the median of the customer's recent payments in the same
  currency (integers only). Country mismatch compares the billing country with the countries
  of the customer's earlier payments (we hold no IP geolocation data; the rule is documented).
- Weights are additive and capped at 100; low < 30 <= medium < 70 <= high maps to approve /
  review / decline.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from . import aws, identity, money
from .keys import Keyring
from .shapes import DynamoItem, Item, JsonObject, TransactAction
from .validation import PaymentRequest

COUNTER_TTL_SECONDS = 25 * 3600
ROLLING_WINDOW_START = 0  # sort key of the rolling counter item (older per-minute buckets expire by TTL)

# (counter kind, window seconds, more than this many earlier payments triggers the rule)
VELOCITY_LIMITS = {
    "customer": [(600, 5, "CUSTOMER_VELOCITY"), (86400, 30, "CUSTOMER_VELOCITY")],
    "card": [(600, 3, "CARD_VELOCITY"), (86400, 10, "CARD_VELOCITY")],
}
WEIGHTS = {
    "CUSTOMER_VELOCITY": 40,
    "CARD_VELOCITY": 45,
    "AMOUNT_ANOMALY": 35,
    "COUNTRY_MISMATCH": 25,
    "HIGH_AMOUNT": 20,
    "NEW_CUSTOMER_HIGH_AMOUNT": 25,
}
MAX_EVENTS = max(limit for limits in VELOCITY_LIMITS.values() for _, limit, _ in limits) + 1
LONGEST_WINDOW = max(window for limits in VELOCITY_LIMITS.values() for window, _, _ in limits)
ANOMALY_FACTOR = 5
ANOMALY_MIN_HISTORY = 3
REVIEW_FROM, DECLINE_FROM = 30, 70
COUNTED_STATUSES = {"approved", "settled", "review"}


@dataclass(frozen=True)
class Candidate:
    """What the rules look at; no card number, only its keyed fingerprint."""

    merchant_id: str  # whose customer: customer counters and histories are the merchant's own
    payment_id: str
    customer_id: str
    card_fingerprints: tuple[str, ...]  # one per live key version, current first
    amount: int
    currency: str
    billing_country: str | None = None


def candidate_for(merchant_id: str, request: PaymentRequest, payment_id: str, ring: Keyring) -> Candidate:
    """The candidate of a validated request: the card only as fingerprints under every live key."""
    return Candidate(
        merchant_id=merchant_id, payment_id=payment_id, customer_id=request.customer_id,
        card_fingerprints=tuple(request.fingerprint(version.fingerprint_key) for version in ring.versions),
        amount=request.amount, currency=request.currency, billing_country=request.billing_country,
    )


@dataclass(frozen=True)
class Risk:
    score: int
    level: str
    reasons: list[str] = field(default_factory=list)

    @property
    def decision(self) -> str:
        return {"low": "approve", "medium": "review", "high": "decline"}[self.level]

    def as_dict(self) -> JsonObject:
        return {"score": self.score, "level": self.level, "reasons": list(self.reasons)}


def median(values: list[int]) -> int:
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) // 2


def score(candidate: Candidate, history: list[Item] | None, velocity: dict[str, dict[int, int]]) -> Risk:
    """Pure scoring. `history` is the customer's earlier payments (None: unknown, history rules
    skipped); `velocity` maps counter kind -> {window seconds: earlier payments in window}."""
    reasons: list[str] = []
    for kind, limits in VELOCITY_LIMITS.items():
        for window, limit, reason in limits:
            if velocity.get(kind, {}).get(window, 0) > limit and reason not in reasons:
                reasons.append(reason)
    cap = money.amount_cap(candidate.currency)
    if candidate.amount >= cap // 100:
        reasons.append("HIGH_AMOUNT")
    if history is not None:
        earlier = [item for item in history if item.get("payment_id") != candidate.payment_id
                   and item.get("status") in COUNTED_STATUSES]
        same_currency = [int(item["amount"]) for item in earlier if item.get("currency") == candidate.currency]
        if len(same_currency) >= ANOMALY_MIN_HISTORY and candidate.amount > ANOMALY_FACTOR * median(same_currency):
            reasons.append("AMOUNT_ANOMALY")
        if not earlier and candidate.amount >= cap // 1000:
            reasons.append("NEW_CUSTOMER_HIGH_AMOUNT")
        known_countries = {item["billing_country"] for item in earlier if item.get("billing_country")}
        if candidate.billing_country and known_countries and candidate.billing_country not in known_countries:
            reasons.append("COUNTRY_MISMATCH")
    total = min(100, sum(WEIGHTS[reason] for reason in reasons))
    level = "low" if total < REVIEW_FROM else "medium" if total < DECLINE_FROM else "high"
    return Risk(total, level, reasons)




# ---------------------------------------------------------------- velocity counters

@dataclass(frozen=True)
class Counter:
    """A rolling counter as read (version 0: the item does not exist yet)."""

    key: str
    version: int = 0
    events: tuple[tuple[int, str], ...] = ()  # (epoch second, payment id), oldest first

    def with_event(self, epoch: int, payment_id: str) -> Counter:
        """This counter with the payment counted (once) and events older than the longest
        window, or beyond the most recent MAX_EVENTS, dropped."""
        events = self.events
        if all(event_id != payment_id for _, event_id in events):
            events = tuple(sorted(events + ((epoch, payment_id),)))
        newest = max(event_epoch for event_epoch, _ in events)
        events = tuple(event for event in events if event[0] > newest - LONGEST_WINDOW)[-MAX_EVENTS:]
        return replace(self, events=events)


def velocity_table() -> str:
    return aws.env("VELOCITY_TABLE")


def counter_key(name: str) -> DynamoItem:
    return {"counter_key": {"S": name}, "window_start": {"N": str(ROLLING_WINDOW_START)}}


def counter_names(candidate: Candidate) -> dict[str, list[str]]:
    """Each counter once, even if two key versions held the same secret (a transaction may
    not touch one item twice)."""
    cards = dict.fromkeys(identity.card_counter(fingerprint) for fingerprint in candidate.card_fingerprints)
    return {"customer": [identity.customer_counter(candidate.merchant_id, candidate.customer_id)], "card": list(cards)}


def counter_from_item(name: str, item: Item | None) -> Counter:
    if item is None:
        return Counter(name)
    events = tuple(sorted((int(epoch), payment_id) for epoch, payment_id in
                          (event.split(":", 1) for event in item.get("events", []))))
    return Counter(name, int(item["version"]), events)


def velocity_counts(counters: dict[str, list[Counter]], payment_id: str, now_epoch: int) -> dict[str, dict[int, int]]:
    """Earlier payments per kind and window; the payment itself is never counted. A card's
    counters (one per key version) are merged by payment id."""
    counts: dict[str, dict[int, int]] = {}
    for kind, limits in VELOCITY_LIMITS.items():
        events = {event_id: epoch for counter in counters.get(kind, []) for epoch, event_id in counter.events}
        events.pop(payment_id, None)
        counts[kind] = {window: sum(1 for epoch in events.values() if epoch > now_epoch - window)
                        for window, _, _ in limits}
    return counts


def counter_put(counter: Counter, read_version: int) -> TransactAction:
    """The transaction action that stores `counter` (its events already added) if the item is
    still at `read_version` (0: still absent)."""
    item = {"counter_key": counter.key, "window_start": ROLLING_WINDOW_START, "version": read_version + 1,
            "events": [f"{epoch}:{event_id}" for epoch, event_id in counter.events],
            "expires_at": max(epoch for epoch, _ in counter.events) + COUNTER_TTL_SECONDS}
    action: JsonObject = {"TableName": velocity_table(), "Item": aws.to_dynamo(item)}
    if read_version:
        action["ConditionExpression"] = "version = :read"
        action["ExpressionAttributeValues"] = {":read": {"N": str(read_version)}}
    else:
        action["ConditionExpression"] = "attribute_not_exists(counter_key)"
    return {"Put": action}


def read_counters(candidate: Candidate) -> dict[str, list[Counter]]:
    """The candidate's counters in one consistent BatchGetItem (used where nothing else is read
    with them: the fraud-check endpoint and the workflow step)."""
    from . import dynamo
    names = counter_names(candidate)
    table = velocity_table()
    found = dynamo.batch_get({table: [counter_key(name) for kind in names.values() for name in kind]})[table]
    return counters_of(names, {item["counter_key"]: item for item in found})


def counters_of(names: dict[str, list[str]], items: dict[str, Item]) -> dict[str, list[Counter]]:
    return {kind: [counter_from_item(name, items.get(name)) for name in kind_names] for kind, kind_names in names.items()}

"""Fraud screening: velocity, amount anomaly, country mismatch; score, level, decision.

Design decisions:
- Velocity counters live in one-minute buckets per counter (`customer#<id>`, `card#<keyed
  fingerprint>`); a window is the sum of the buckets that start inside it, so windows slide
  minute by minute. Each bucket keeps the set of payment ids it counted and the update is
  conditional on the id not being in the set: a retried request (same payment id, same
  created_at, hence same bucket) is counted exactly once. Counts exclude the payment being
  screened, so a retry is scored exactly like the first attempt.
- Amount anomaly compares with the median of the customer's recent payments in the same
  currency (integers only). Country mismatch compares the billing country with the countries
  of the customer's earlier payments (we hold no IP geolocation data; the rule is documented).
- Weights are additive and capped at 100; low < 30 <= medium < 70 <= high maps to approve /
  review / decline.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Iterable, Optional

from . import aws, money

BUCKET_SECONDS = 60
COUNTER_TTL_SECONDS = 25 * 3600

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
ANOMALY_FACTOR = 5
ANOMALY_MIN_HISTORY = 3
REVIEW_FROM, DECLINE_FROM = 30, 70
COUNTED_STATUSES = {"approved", "settled", "review"}


@dataclass(frozen=True)
class Candidate:
    """What the rules look at; no card number, only its keyed fingerprint."""

    payment_id: str
    customer_id: str
    card_fingerprint: str
    amount: int
    currency: str
    billing_country: Optional[str] = None


@dataclass(frozen=True)
class Risk:
    score: int
    level: str
    reasons: list = field(default_factory=list)

    @property
    def decision(self) -> str:
        return {"low": "approve", "medium": "review", "high": "decline"}[self.level]

    def as_dict(self) -> dict:
        return {"score": self.score, "level": self.level, "reasons": list(self.reasons)}


def bucket_start(moment: datetime) -> int:
    epoch = int(moment.timestamp())
    return epoch - epoch % BUCKET_SECONDS


def counter_keys(candidate: Candidate) -> dict[str, str]:
    return {"customer": f"customer#{candidate.customer_id}", "card": f"card#{candidate.card_fingerprint}"}


def median(values: list[int]) -> int:
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) // 2


def score(candidate: Candidate, history: Optional[list[dict]], velocity: dict[str, dict[int, int]]) -> Risk:
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


def _table() -> str:
    return aws.env("VELOCITY_TABLE")


def velocity_counts(candidate: Candidate, now: datetime) -> dict[str, dict[int, int]]:
    """Earlier payments per counter and window (the candidate itself is never counted)."""
    client = aws.client("dynamodb")
    longest = max(window for limits in VELOCITY_LIMITS.values() for window, _, _ in limits)
    current = bucket_start(now)
    counts: dict[str, dict[int, int]] = {}
    for kind, key in counter_keys(candidate).items():
        buckets: list[tuple[int, int]] = []
        query = {
            "TableName": _table(),
            "KeyConditionExpression": "counter_key = :key AND window_start > :since",
            "ExpressionAttributeValues": {":key": {"S": key}, ":since": {"N": str(current - longest)}},
            "ProjectionExpression": "window_start, payment_ids",
        }
        while True:
            answer = client.query(**query)
            for item in answer.get("Items", []):
                ids = set(item.get("payment_ids", {}).get("SS", [])) - {candidate.payment_id}
                buckets.append((int(item["window_start"]["N"]), len(ids)))
            if "LastEvaluatedKey" not in answer:
                break
            query["ExclusiveStartKey"] = answer["LastEvaluatedKey"]
        counts[kind] = {
            window: sum(count for start, count in buckets if start > current - window)
            for window, _, _ in VELOCITY_LIMITS[kind]
        }
    return counts


def record(candidate: Candidate, created_at: datetime) -> int:
    """Count the payment once in each of its counters; return how many counters were updated
    (0 on a retry that was already counted)."""
    client = aws.client("dynamodb")
    start = bucket_start(created_at)
    updated = 0
    for key in counter_keys(candidate).values():
        try:
            client.update_item(
                TableName=_table(),
                Key={"counter_key": {"S": key}, "window_start": {"N": str(start)}},
                UpdateExpression="ADD payment_count :one, payment_ids :ids SET expires_at = :expires",
                ConditionExpression="attribute_not_exists(payment_ids) OR NOT contains(payment_ids, :id)",
                ExpressionAttributeValues={
                    ":one": {"N": "1"},
                    ":ids": {"SS": [candidate.payment_id]}, ":id": {"S": candidate.payment_id},
                    ":expires": {"N": str(start + COUNTER_TTL_SECONDS)},
                },
            )
            updated += 1
        except client.exceptions.ConditionalCheckFailedException:
            pass
    return updated


def screen(candidate: Candidate, now: datetime, history: Optional[Iterable[dict]]) -> Risk:
    return score(candidate, list(history) if history is not None else None, velocity_counts(candidate, now))

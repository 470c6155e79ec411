"""Validation of a payment request body (POST /payments, /payments/validate, /fraud-check).

Design decisions:
- Every rule of the OpenAPI PaymentRequest schema is checked here again, with the first
  violation reported as {code, message, field}; API Gateway's model validation is only a first
  line and is absent in tests and in direct invocations.
- JSON booleans are not integers (Python's bool is an int subclass, so this needs care) and a
  Decimal (a JSON number with a fraction or exponent) is never an amount.
- The validated request keeps the card number in memory only; `card_summary` and
  `fingerprint` are the only card-derived values meant to be stored.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeGuard

from . import cards, money
from .errors import bad_request
from .shapes import JsonObject

ALLOWED_FIELDS = {
    "amount", "currency", "customer_id", "card", "merchant_reference", "description",
    "metadata", "ip_address", "billing_country",
}
REQUIRED_FIELDS = ("amount", "currency", "customer_id", "card")
CARD_FIELDS = {"number", "exp_month", "exp_year", "cvc"}
CARD_REQUIRED = ("number", "exp_month", "exp_year")

CUSTOMER_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]+")
CURRENCY_CODE = re.compile(r"[A-Z]{3}")
COUNTRY_CODE = re.compile(r"[A-Z]{2}")
IP_ADDRESS = re.compile(r"[0-9A-Fa-f:.]{2,45}")
MAX_METADATA_ENTRIES = 20
MAX_METADATA_KEY = 40
MAX_METADATA_VALUE = 500
MAX_DESCRIPTION = 255
MAX_MERCHANT_REFERENCE = 64


@dataclass(frozen=True)
class PaymentRequest:
    amount: int
    currency: str
    customer_id: str
    card_number: str = field(repr=False)
    card: cards.CardSummary
    has_cvc: bool = False
    merchant_reference: str | None = None
    description: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    ip_address: str | None = None
    billing_country: str | None = None

    def fingerprint(self, key: bytes) -> str:
        return cards.fingerprint(self.card_number, key)

    def canonical(self) -> JsonObject:
        """The request without the card number or CVC (safe to store and log)."""
        return {
            "amount": self.amount, "currency": self.currency, "customer_id": self.customer_id,
            "card": self.card.as_dict(), "merchant_reference": self.merchant_reference,
            "description": self.description, "metadata": dict(self.metadata),
            "ip_address": self.ip_address, "billing_country": self.billing_country,
        }


ECHOABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}")


def echoable_name(name: str) -> str:
    """A client-chosen field name is echoed in errors and logs only when it is a plain short
    identifier (so it cannot carry a card number or anything else unexpected)."""
    return name if ECHOABLE_NAME.fullmatch(name) and not contains_card_number(name) else "(unnamed)"


def is_integer(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _require_integer(value: Any, field_name: str, low: int, high: int, code: str) -> int:
    if not is_integer(value):
        raise bad_request(code, f"{field_name} must be an integer", field_name)
    if not low <= value <= high:
        raise bad_request(code, f"{field_name} must be between {low} and {high}", field_name)
    return value


def _optional_string(body: JsonObject, name: str, pattern: re.Pattern[str] | None, max_length: int) -> str | None:
    if name not in body or body[name] is None:
        return None
    value = body[name]
    if not isinstance(value, str):
        raise bad_request("invalid_field", f"{name} must be a string", name)
    if len(value) > max_length:
        raise bad_request("invalid_field", f"{name} must be at most {max_length} characters", name)
    if pattern is not None and not pattern.fullmatch(value):
        raise bad_request("invalid_field", f"{name} has an invalid format", name)
    return value


def parse_amount(value: Any, currency: str, field_name: str = "amount") -> int:
    if not is_integer(value):
        raise bad_request("invalid_amount", "amount must be an integer number of minor units", field_name)
    if value <= 0:
        raise bad_request("invalid_amount", "amount must be greater than zero", field_name)
    cap = money.amount_cap(currency)
    if value > cap:
        raise bad_request("amount_too_large", f"amount exceeds the {currency} cap of {cap} minor units", field_name)
    return value


def parse_currency(value: Any, field_name: str = "currency") -> str:
    if not isinstance(value, str) or not CURRENCY_CODE.fullmatch(value):
        raise bad_request("invalid_currency", "currency must be an upper-case ISO 4217 alpha-3 code", field_name)
    if value not in money.CURRENCY_EXPONENTS:
        raise bad_request("unsupported_currency", "currency is not a circulating ISO 4217 currency", field_name)
    return value


def parse_customer_id(value: Any, field_name: str = "customer_id") -> str:
    if not isinstance(value, str) or not CUSTOMER_ID.fullmatch(value):
        raise bad_request("invalid_field", "customer_id must be 1-64 characters of A-Z a-z 0-9 _ . : -", field_name)
    if contains_card_number(value):
        raise bad_request("invalid_field", "customer_id must not be a card number", field_name)
    return value


def _parse_card(card: Any, now: datetime | None) -> tuple[str, cards.CardSummary, bool]:
    if not isinstance(card, dict):
        raise bad_request("invalid_field", "card must be an object", "card")
    unknown = sorted(set(card) - CARD_FIELDS)
    if unknown:
        raise bad_request("unknown_field", "unknown field in card", f"card.{echoable_name(unknown[0])}")
    for name in CARD_REQUIRED:
        if name not in card:
            raise bad_request("missing_field", f"card.{name} is required", f"card.{name}")
    try:
        brand = cards.check_number(card["number"])
        exp_month = _require_integer(card["exp_month"], "card.exp_month", 1, 12, "invalid_expiry")
        exp_year = _require_integer(card["exp_year"], "card.exp_year", 2000, 2100, "invalid_expiry")
        cards.check_expiry(exp_month, exp_year, now)
        has_cvc = "cvc" in card
        if has_cvc:
            cards.check_cvc(card["cvc"], brand)
    except cards.CardError as error:
        raise bad_request(error.code, str(error), error.field) from None
    number = card["number"]
    return number, cards.CardSummary(brand, number[-4:], exp_month, exp_year), has_cvc


def _parse_metadata(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise bad_request("invalid_field", "metadata must be an object of strings", "metadata")
    if len(value) > MAX_METADATA_ENTRIES:
        raise bad_request("invalid_field", f"metadata may hold at most {MAX_METADATA_ENTRIES} entries", "metadata")
    for key, item in value.items():
        if not PRINTABLE_ASCII.fullmatch(key) or len(key) > MAX_METADATA_KEY or contains_card_number(key):
            raise bad_request("invalid_field", "metadata keys must be 1-40 printable ASCII characters, no card numbers", "metadata")
        if not isinstance(item, str) or len(item) > MAX_METADATA_VALUE:
            raise bad_request("invalid_field", "metadata values must be strings of at most 500 characters", f"metadata.{key}")
        if contains_card_number(item):
            raise bad_request("invalid_field", "metadata must not contain card numbers", f"metadata.{key}")
    return dict(value)


def contains_card_number(text: str) -> bool:
    """Refuse free text holding what looks like a card number (a run of 13-19 digits, possibly
    split by spaces or dashes, passing Luhn with a known brand prefix), so a careless merchant
    cannot make us store one. Longer digit runs (order numbers, timestamps) are left alone."""
    digits: list[str] = []
    for char in text + "x":
        if char.isascii() and char.isdigit():
            digits.append(char)
        elif char in " -" and digits:
            continue
        else:
            run = "".join(digits)
            if (cards.MIN_LENGTH <= len(run) <= cards.MAX_LENGTH and cards.luhn_valid(run)
                    and cards.detect_brand(run) != "unknown"):
                return True
            digits = []
    return False


def parse_payment_request(body: Any, now: datetime | None = None) -> PaymentRequest:
    """Validate a decoded JSON body; raise ApiError(400) naming the first bad field."""
    if not isinstance(body, dict):
        raise bad_request("invalid_body", "request body must be a JSON object")
    unknown = sorted(set(body) - ALLOWED_FIELDS)
    if unknown:
        raise bad_request("unknown_field", "unknown field", echoable_name(unknown[0]))
    for name in REQUIRED_FIELDS:
        if name not in body:
            raise bad_request("missing_field", f"{name} is required", name)
    currency = parse_currency(body["currency"])
    amount = parse_amount(body["amount"], currency)
    customer_id = parse_customer_id(body["customer_id"])
    number, summary, has_cvc = _parse_card(body["card"], now)
    merchant_reference = _optional_string(body, "merchant_reference", PRINTABLE_ASCII, MAX_MERCHANT_REFERENCE)
    description = _optional_string(body, "description", None, MAX_DESCRIPTION)
    for name, text in (("merchant_reference", merchant_reference), ("description", description)):
        if text and contains_card_number(text):
            raise bad_request("invalid_field", f"{name} must not contain card numbers", name)
    metadata = _parse_metadata(body.get("metadata"))
    ip_address = _optional_string(body, "ip_address", IP_ADDRESS, 45)
    billing_country = _optional_string(body, "billing_country", COUNTRY_CODE, 2)
    return PaymentRequest(
        amount=amount, currency=currency, customer_id=customer_id, card_number=number,
        card=summary, has_cvc=has_cvc, merchant_reference=merchant_reference,
        description=description, metadata=metadata, ip_address=ip_address,
        billing_country=billing_country,
    )


__all__ = ["PaymentRequest", "parse_payment_request", "parse_amount", "parse_currency"]

"""Card checks: format, Luhn, brand, expiry, and the keyed fingerprint.

Design decisions:
- A card number is exactly 13-19 ASCII digits. Spaces, dashes and Unicode digits are refused
  rather than normalised: the API contract says digits, and silently accepting "４２４２" (full
  width) would let a different string than the one validated reach a processor.
- The only forms of a number that may leave this module are the brand, the last four digits
  and an HMAC-SHA256 fingerprint under a secret key (from Secrets Manager). An unkeyed hash of a
  card number can be brute-forced (the search space is about 10^9 for a known BIN and last
  four), so there is no unkeyed hash anywhere.
- A card is valid through the last day of its expiry month (UTC); expiry more than 20 years
  ahead is refused as implausible.
"""
from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime

MIN_LENGTH, MAX_LENGTH = 13, 19
MAX_YEARS_AHEAD = 20

# (brand, prefix ranges as (low, high) inclusive on the leading digits, allowed lengths)
_BRANDS: list[tuple[str, list[tuple[int, int]], set[int]]] = [
    ("amex", [(34, 34), (37, 37)], {15}),
    ("diners", [(300, 305), (36, 36), (38, 39)], {14, 15, 16, 17, 18, 19}),
    ("jcb", [(3528, 3589)], {16, 17, 18, 19}),
    ("discover", [(6011, 6011), (644, 649), (65, 65), (622126, 622925)], {16, 17, 18, 19}),
    ("unionpay", [(62, 62), (81, 81)], {16, 17, 18, 19}),
    ("mastercard", [(51, 55), (2221, 2720)], {16}),
    ("maestro", [(50, 50), (56, 58), (6304, 6304), (6759, 6759), (676770, 676774)], set(range(12, 20))),
    ("visa", [(4, 4)], {13, 16, 19}),
]


class CardError(ValueError):
    """An invalid card field; `code` is the API error code, `field` the field path."""

    def __init__(self, code: str, message: str, field: str):
        super().__init__(message)
        self.code = code
        self.field = field


def luhn_valid(number: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(number)):
        digit = ord(char) - 48
        if position % 2 == 1:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def detect_brand(number: str) -> str:
    for brand, ranges, lengths in _BRANDS:
        for low, high in ranges:
            width = len(str(low))
            if len(number) >= width and low <= int(number[:width]) <= high and len(number) in lengths:
                return brand
    return "unknown"


def is_ascii_digits(value: str) -> bool:
    return value.isascii() and value.isdigit()


def check_number(number: object) -> str:
    """Return the brand of a valid number or raise CardError."""
    if not isinstance(number, str) or not is_ascii_digits(number):
        raise CardError("invalid_card_number", "card number must be a string of ASCII digits", "card.number")
    if not MIN_LENGTH <= len(number) <= MAX_LENGTH:
        raise CardError("invalid_card_number", "card number must have 13 to 19 digits", "card.number")
    if not luhn_valid(number):
        raise CardError("invalid_card_number", "card number fails the Luhn check", "card.number")
    return detect_brand(number)


def check_expiry(exp_month: int, exp_year: int, now: datetime | None = None) -> None:
    now = now or datetime.now(UTC)
    if not 1 <= exp_month <= 12:
        raise CardError("invalid_expiry", "exp_month must be between 1 and 12", "card.exp_month")
    if (exp_year, exp_month) < (now.year, now.month):
        raise CardError("card_expired", "the card has expired", "card.exp_year")
    if exp_year > now.year + MAX_YEARS_AHEAD:
        raise CardError("invalid_expiry", "exp_year is too far in the future", "card.exp_year")


def check_cvc(cvc: object, brand: str) -> None:
    expected = 4 if brand == "amex" else 3
    if not isinstance(cvc, str) or not is_ascii_digits(cvc) or len(cvc) != expected:
        raise CardError("invalid_cvc", f"cvc must be {expected} digits for this card", "card.cvc")


def fingerprint(number: str, key: bytes) -> str:
    """Keyed fingerprint: equal for equal numbers, useless without the key."""
    return hmac.new(key, b"card:" + number.encode("ascii"), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class CardSummary:
    """What may be kept about a card."""

    brand: str
    last4: str
    exp_month: int
    exp_year: int

    def as_dict(self) -> dict[str, str | int]:
        return {"brand": self.brand, "last4": self.last4, "exp_month": self.exp_month, "exp_year": self.exp_year}

"""Unit rules: ISO 4217 table, amounts, Luhn, brands, expiry, fingerprints."""
from __future__ import annotations

from datetime import UTC, datetime

import iso4217
import pytest
from paylib import cards, money


def _maintained_table():
    funds = set()
    for entry in iso4217.raw_xml.iter("CcyNtry"):
        name, code = entry.find("CcyNm"), entry.find("Ccy")
        if code is not None and name is not None and name.get("IsFund") == "true":
            funds.add(code.text)
    return funds, {code: data for code, data in iso4217.raw_table.items() if code}


def test_currency_table_matches_the_maintained_iso4217_source():
    funds, table = _maintained_table()
    for code, exponent in money.CURRENCY_EXPONENTS.items():
        assert code in table, f"{code} is not in ISO 4217"
        assert int(table[code]["CcyMnrUnts"]) == exponent, f"{code} exponent differs from ISO 4217"
        assert code not in funds
    circulating = {code for code, data in table.items()
                   if code not in funds and str(data.get("CcyMnrUnts")).isdigit() and code not in ("UYW", "XAD")
                   and not (code.startswith("X") and code not in ("XAF", "XOF", "XCD", "XCG", "XPF"))}
    assert circulating == set(money.CURRENCY_EXPONENTS), "ISO 4217 changed: update paylib/money.py"


@pytest.mark.parametrize("code, exponent", [("EUR", 2), ("JPY", 0), ("KWD", 3), ("BHD", 3), ("CLP", 0), ("XOF", 0)])
def test_known_exponents(code, exponent):
    assert money.currency_exponent(code) == exponent


@pytest.mark.parametrize("code", ["XAU", "XAG", "XDR", "XTS", "XXX", "XSU", "BOV", "CLF", "USN", "CHE", "CHW", "UYI", "UYW", "MXV", "COU", "ABC"])
def test_funds_and_non_money_codes_are_refused(code):
    with pytest.raises(money.UnknownCurrency):
        money.currency_exponent(code)


def test_caps_and_formatting_use_integers():
    assert money.amount_cap("EUR") == 100_000_000
    assert money.amount_cap("KWD") == 1_000_000_000
    assert money.amount_cap("JPY") == 150_000_000
    assert money.format_amount(1, "EUR") == "0.01 EUR"
    assert money.format_amount(1234, "JPY") == "1234 JPY"
    assert money.format_amount(1005, "BHD") == "1.005 BHD"
    assert money.format_amount(-250, "USD") == "-2.50 USD"


@pytest.mark.parametrize("number, brand", [
    ("4242424242424242", "visa"), ("4222222222222", "visa"), ("5555555555554444", "mastercard"),
    ("2223003122003222", "mastercard"), ("378282246310005", "amex"), ("6011111111111117", "discover"),
    ("3056930009020004", "diners"), ("3566002020360505", "jcb"), ("6200000000000005", "unionpay"),
])
def test_brand_detection(number, brand):
    assert cards.check_number(number) == brand


@pytest.mark.parametrize("number", ["4242424242424241", "123", "4242-4242-4242-4242", "42424242424242424242", "", "\u0664" * 16])
def test_invalid_numbers(number):
    with pytest.raises(cards.CardError):
        cards.check_number(number)


def test_luhn():
    assert cards.luhn_valid("79927398713")
    assert not cards.luhn_valid("79927398710")


def test_expiry_is_end_of_month_utc():
    now = datetime(2026, 11, 30, 23, 59, tzinfo=UTC)
    cards.check_expiry(11, 2026, now)
    with pytest.raises(cards.CardError, match="expired"):
        cards.check_expiry(10, 2026, now)
    with pytest.raises(cards.CardError):
        cards.check_expiry(1, 2050, now)


def test_cvc_length_depends_on_brand():
    cards.check_cvc("1234", "amex")
    cards.check_cvc("123", "visa")
    for cvc, brand in (("123", "amex"), ("1234", "visa"), ("12a", "visa"), (123, "visa")):
        with pytest.raises(cards.CardError):
            cards.check_cvc(cvc, brand)


def test_fingerprint_is_keyed():
    a = cards.fingerprint("4242424242424242", b"k" * 32)
    assert a == cards.fingerprint("4242424242424242", b"k" * 32)
    assert a != cards.fingerprint("4242424242424242", b"j" * 32)
    assert "4242424242424242" not in a

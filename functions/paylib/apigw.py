"""API Gateway proxy events: headers, content type, size limit and strict JSON parsing.

Design decisions:
- Header names are case-insensitive (HTTP); API Gateway passes them as sent.
- The body limit (16 KiB) is checked on the decoded bytes before parsing, so a large body costs
  nothing and answers 413.
- JSON is parsed strictly: duplicate keys, NaN/Infinity and invalid UTF-8 are malformed (400);
  numbers with a fraction or exponent become Decimal (never float), so an amount like 10.5 or
  1e3 is reported as "not an integer" instead of being rounded.
"""
from __future__ import annotations

import base64
import binascii
import json
import re
from decimal import Decimal
from typing import Any

from .errors import ApiError, bad_request
from .shapes import Event, JsonObject

MAX_BODY_BYTES = 16 * 1024
MERCHANT_ID = re.compile(r"mer_[0-9a-f]{24}")  # as paylib.merchants (not imported: cold start)


def header(event: Event, name: str) -> str | None:
    headers = event.get("headers") or {}
    wanted = name.lower()
    for key, value in headers.items():
        if isinstance(key, str) and key.lower() == wanted:
            return value if isinstance(value, str) else None
    return None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> JsonObject:
    result: JsonObject = {}
    for key, value in pairs:
        if key in result:
            raise ValueError("duplicate key in JSON object")
        result[key] = value
    return result


def raw_body(event: Event) -> bytes:
    body = event.get("body")
    if body is None:
        return b""
    if not isinstance(body, str):
        raise bad_request("malformed_request", "request body must be text")
    if event.get("isBase64Encoded"):
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise bad_request("malformed_request", "request body is not valid base64") from None
    return body.encode("utf-8", errors="surrogatepass")


def json_body(event: Event) -> Any:
    """The parsed JSON body, after the content-type (415) and size (413) checks."""
    content_type = header(event, "Content-Type")
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        raise ApiError(415, "unsupported_media_type", "Content-Type must be application/json")
    data = raw_body(event)
    if len(data) > MAX_BODY_BYTES:
        raise ApiError(413, "payload_too_large", f"request body must be at most {MAX_BODY_BYTES} bytes")
    if not data.strip():
        raise bad_request("malformed_json", "request body is empty")
    try:
        text = data.decode("utf-8")
        return json.loads(
            text,
            parse_float=Decimal,
            parse_constant=_reject_constant,
            object_pairs_hook=_no_duplicates,
        )
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise bad_request("malformed_json", "request body is not valid JSON") from None


def path_parameter(event: Event, name: str) -> str | None:
    value = (event.get("pathParameters") or {}).get(name)
    return value if isinstance(value, str) else None


def merchant_id(event: Event) -> str:
    """The merchant the authorizer resolved the caller's secret key to. Without one the request
    is refused (401): there is no anonymous caller to fall back to."""
    authorizer = (event.get("requestContext") or {}).get("authorizer") or {}
    value = authorizer.get("merchant_id") if isinstance(authorizer, dict) else None
    if not isinstance(value, str) or not MERCHANT_ID.fullmatch(value):
        raise ApiError(401, "unauthorized", "a valid secret key is required (Authorization: Bearer sk_...)")
    return value

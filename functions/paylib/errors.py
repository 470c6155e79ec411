"""One error shape for every answer: {"error": {"code", "message", "field"}}.

Design decision: handlers raise ApiError for every expected failure; anything else is an
unexpected failure answered with a generic 500 whose body names no internals (the traceback goes
to the structured log, which never contains request bodies).
"""
from __future__ import annotations

import json
from typing import Any

from .shapes import ApiResponse, JsonObject

JSON_HEADERS = {"Content-Type": "application/json", "Cache-Control": "no-store"}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, field: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field

    def body(self) -> JsonObject:
        return {"error": {"code": self.code, "message": self.message, "field": self.field}}


class TransientError(Exception):
    """A dependency failed in a way worth retrying (the workflow retries on this name)."""


def bad_request(code: str, message: str, field: str | None = None) -> ApiError:
    return ApiError(400, code, message, field)


def response(status: int, body: Any, headers: dict[str, str] | None = None) -> ApiResponse:
    return {
        "statusCode": status,
        "headers": {**JSON_HEADERS, **(headers or {})},
        "body": json.dumps(body, separators=(",", ":"), sort_keys=True),
    }


def error_response(error: ApiError) -> ApiResponse:
    return response(error.status, error.body())


def internal_error_response() -> ApiResponse:
    return response(500, {"error": {"code": "internal_error", "message": "unexpected error; retry later", "field": None}})

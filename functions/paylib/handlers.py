"""The envelope of every API Gateway handler: errors in one shape, no 500 for bad input.

Design decision: expected failures are ApiError (4xx with code/message/field). Anything else is
logged with its traceback (no event, no body) and answered with a bare 500, so a stack trace or
an internal name never reaches a client.
"""
from __future__ import annotations

import functools
from collections.abc import Callable

from .errors import ApiError, error_response, internal_error_response
from .observability import logger
from .shapes import ApiResponse, Event


def api_endpoint(function: Callable[[Event, object], ApiResponse]) -> Callable[[Event, object], ApiResponse]:
    @functools.wraps(function)
    def wrapper(event: Event, context: object) -> ApiResponse:
        try:
            return function(event, context)
        except ApiError as error:
            logger.info("request refused", extra={"status": error.status, "code": error.code, "field": error.field})
            return error_response(error)
        except Exception:
            logger.exception("unexpected failure")
            return internal_error_response()
    return wrapper


def is_api_event(event: object) -> bool:
    return isinstance(event, dict) and "httpMethod" in event and "requestContext" in event

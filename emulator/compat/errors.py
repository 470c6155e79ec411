"""Errors shared by the compatibility layer."""
from __future__ import annotations

from moto.core.exceptions import ServiceException


class ResourceFailure(Exception):
    """A resource operation failed; the message is the event's ResourceStatusReason."""


class CloudFormationError(ServiceException):
    """An error answer of the CloudFormation API (serialized by moto like AWS's)."""

    code = "ValidationError"

    def __init__(self, message: str, code: str | None = None):
        super().__init__(message)
        if code:
            self.code = code


class ValidationError(CloudFormationError):
    code = "ValidationError"


class AlreadyExists(CloudFormationError):
    code = "AlreadyExistsException"


class InsufficientCapabilities(CloudFormationError):
    code = "InsufficientCapabilitiesException"


class ChangeSetNotFound(CloudFormationError):
    code = "ChangeSetNotFound"


class InvalidChangeSetStatus(CloudFormationError):
    code = "InvalidChangeSetStatus"


class StackNotFound(CloudFormationError):
    code = "ValidationError"


def describe_backend_error(error: BaseException) -> str:
    """A moto exception as CloudFormation words a handler failure."""
    code = getattr(error, "code", None)
    if isinstance(code, int):  # moto's RESTError: .code is the HTTP status, .error_type the code
        code = getattr(error, "error_type", None)
    code = code or getattr(error, "error_type", None)
    message = getattr(error, "message", None) or str(error) or type(error).__name__
    if code:
        return f"Resource handler returned message: \"{message}\" (Error Code: {code})"
    return f"Internal failure of the emulator ({type(error).__name__}: {message})"

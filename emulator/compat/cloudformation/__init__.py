"""The emulator's CloudFormation: its own stack engine on top of moto's resource models."""
from __future__ import annotations

from collections.abc import Callable

# Called after every reset of moto's state (the emulator provisions AWS-owned things again).
RESET_HOOKS: list[Callable[[], None]] = []


def apply() -> None:
    from . import responses

    responses.install()
    _reset_patch()


def _reset_patch() -> None:
    # moto's reset (POST /moto-api/reset, moto_api_backend.reset) clears moto's backends; the
    # emulator's stacks live outside them and are cleared with them.
    from moto.core.base_backend import BackendDict

    from . import model

    original = BackendDict.reset.__func__ if hasattr(BackendDict.reset, "__func__") else BackendDict.reset

    def reset(cls) -> None:
        original(cls)
        model.reset()
        for hook in list(RESET_HOOKS):
            hook()

    BackendDict.reset = classmethod(reset)

"""The emulator's CloudFormation: its own stack engine on top of moto's resource models."""
from __future__ import annotations


def apply() -> None:
    from . import responses

    responses.install()

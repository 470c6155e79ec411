"""IMPORT change sets (ChangeSetType=IMPORT with ResourcesToImport)."""
from __future__ import annotations

from ...compat.errors import ValidationError


def import_changes(store, change_set, evaluation) -> list[dict]:
    raise ValidationError("IMPORT change sets are not supported by the emulator yet")


def execute_import(store, stack, change_set, token) -> bool:
    raise ValidationError("IMPORT change sets are not supported by the emulator yet")

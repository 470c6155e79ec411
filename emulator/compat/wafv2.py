"""wafv2: compatibility patches."""
from __future__ import annotations


def apply() -> None:
    pass

"""monitoring layer (stub: being written)."""
from __future__ import annotations

from troposphere import Template

from .common import new_template
from .config import EnvironmentConfig

LAYER = "monitoring"


def build(config: EnvironmentConfig) -> Template:
    return new_template(config, LAYER, "stub")

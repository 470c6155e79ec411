"""The stacks of an environment, in the order a person reads them.

Deploy order is not taken from this list: the build derives it from each template's imports.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

from . import api, artifacts, compute, data, delivery, dr, messaging, monitoring, network, security, storage, workflow
from .config import EnvironmentConfig


@dataclass(frozen=True)
class Layer:
    name: str
    module: ModuleType
    applies: Callable[[EnvironmentConfig], bool] = lambda config: True
    region: Callable[[EnvironmentConfig], str] = lambda config: config.region
    bootstrap: bool = False
    # Deployed by an administrator only, never with the CloudFormation service role (it holds it).
    administered: bool = False
    serves_traffic: bool = False
    timeout_minutes: int = 30


LAYERS = (
    Layer("artifacts", artifacts, bootstrap=True, administered=True),
    Layer("delivery", delivery, administered=True),
    Layer("dr", dr, applies=lambda config: config.dr.enabled, region=lambda config: config.dr.region),
    Layer("network", network),
    Layer("security", security),
    Layer("data", data, timeout_minutes=90),
    Layer("storage", storage),
    Layer("messaging", messaging),
    Layer("compute", compute, serves_traffic=True, timeout_minutes=60),
    Layer("workflow", workflow),
    Layer("api", api, serves_traffic=True),
    Layer("monitoring", monitoring),
)


def layers_for(config: EnvironmentConfig) -> list[Layer]:
    return [layer for layer in LAYERS if layer.applies(config)]

"""EventBridge: rules.

moto's AWS::Events::Rule model is used as it is: it creates the rule with its pattern, schedule,
state, role, bus and tags, puts its targets, and deletes it. No gap found for the platform's
templates; the module exists so the coverage table has one place per area.
"""
from __future__ import annotations


def apply() -> None:
    return None

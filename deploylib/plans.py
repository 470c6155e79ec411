"""What a stack needs (the plan of one stack) and how a run ended for it (its outcome label).

Both are enums of strings: they are compared in code and written to review.json, plan.json and
deployed.json as the same words.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from .changesets import ChangeSet
from .guards import GuardFinding
from .manifest import StackSpec
from .shapes import Stack


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    UNCHANGED = "unchanged"  # template, parameters and tags as deployed: no change set at all
    NO_OP = "no-op"  # a change set was needed to tell, and it held no changes
    DEFERRED = "deferred"  # its change set can exist only once the stacks it imports from are deployed
    RECREATE = "recreate"  # ROLLBACK_COMPLETE after a failed first create: delete, then create
    BLOCKED = "blocked"  # a state or a guard stops it; the note says the way out
    FAILED = "failed"  # its change set could not be created; the note says why


NOTHING_TO_RUN = frozenset({Action.UNCHANGED, Action.NO_OP})


class Label(StrEnum):
    """How a run ended for one stack (the summary, deployed.json)."""

    DEPLOYED = "deployed"
    UNCHANGED = "unchanged"
    NO_OP = "no-op"
    DELETED = "deleted"
    ABSENT = "absent"
    FAILED = "failed"
    BLOCKED = "blocked"
    INTERRUPTED = "interrupted"
    NEEDS_PLAN = "needs a new plan"
    RECOVERED = "recovered"
    NOT_STARTED = "not started"  # the run stopped before its dependencies were done
    PLANNED = "planned"  # only while planning: its plan entry holds the result


@dataclass
class StackPlan:
    spec: StackSpec
    action: Action
    deployed: Stack | None = None
    change_set: ChangeSet | None = None
    note: str = ""
    findings: list[GuardFinding] = field(default_factory=list)
    parameters: dict[str, str] | None = None  # what this plan passes (the manifest's, plus deploy-managed ones)
    previous_template: dict[str, Any] | None = None  # the deployed template an UPDATE change set compares with

    @property
    def blocked(self) -> bool:
        return self.action in (Action.BLOCKED, Action.FAILED) or bool(self.findings)

"""What the commands share with the person running them: options, the confirmation prompt, the
summary of a run."""
from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

from .output import Printer
from .plans import Label
from .scheduler import RunResult


@dataclass
class Options:
    yes: bool = False
    force: bool = False
    drift: bool = False
    fix: bool = False  # preflight: create missing service-linked roles
    force_delete: bool = False  # recover: FORCE_DELETE_STACK instead of RetainResources
    rollback_triggers: bool = True  # False: --no-rollback-triggers (a hotfix during an incident)
    stack: str | None = None  # recover, adopt: the stack (name or layer)
    configured_region: str | None = None  # the region of the caller's AWS session, if any
    allow_replace: set[str] = field(default_factory=set)
    max_parallel: int = 4
    stdin: TextIO | None = None
    ask: Callable[[str], str] = input


def confirm(printer: Printer, options: Options, question: str) -> bool:
    if options.yes:
        return True
    stdin = options.stdin or sys.stdin
    if not stdin.isatty():
        printer.line("not on a terminal and --yes (YES=1) not given: nothing executed")
        return False
    return options.ask(f"{question} Type 'yes' to continue: ").strip() == "yes"


def print_summary(printer: Printer, result: RunResult) -> None:
    printer.line("\n=== Summary ===")
    groups: dict[str, list[str]] = {}
    for name, outcome in sorted(result.outcomes.items()):
        groups.setdefault(str(outcome.label), []).append(name)
    for label, names in groups.items():
        printer.line(f"{label}: {', '.join(names)}")
    if result.not_started:
        printer.line(f"{Label.NOT_STARTED}: {', '.join(result.not_started)}")
    for name, outcome in sorted(result.outcomes.items()):
        if not outcome.ok:
            printer.line(f"{name}: {outcome.detail}")
    if result.interrupted:
        printer.line("interrupted: no new stack was started; operations already running go on in "
                     "CloudFormation (see `make status`)")

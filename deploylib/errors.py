"""The one exception root of the deploy side, and the exit codes it maps to.

deploy.py's main() catches DeployError once and turns it into `error: <message>` and the
error's exit code. Failures of one stack are not exceptions out of a run: the planner and the
executor turn them into that stack's plan entry or Outcome (scheduler.py).
"""
from __future__ import annotations

FAILED_EXIT = 1  # failed or blocked (a guard, a stack state, a refused plan)
REFUSED_EXIT = 2  # refused before doing anything (preflight, a bad manifest, no confirmation)
INTERRUPTED_EXIT = 130  # 128 + SIGINT, what shells report for Ctrl-C


class DeployError(Exception):
    """Root of every deploy-side error; exit_code is what the process ends with."""

    exit_code = FAILED_EXIT


class UsageError(DeployError):
    """The command line asks for something the command cannot do (e.g. no --stack)."""

    exit_code = REFUSED_EXIT

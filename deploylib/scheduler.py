"""Dependency-driven parallel runner.

A node starts as soon as every node it depends on has succeeded — not level by level, so a
slow stack delays only what really needs it. Concurrency is bounded by max_parallel.
After the first failure no new node starts; running ones finish; the rest is "not started".

Ctrl-C (KeyboardInterrupt in the main thread, which is the one waiting here) sets the shared
stop event: no new node starts, running nodes stop waiting at their next pause (their
CloudFormation operations go on) and report it, and the result says it was interrupted.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from .plans import Label


@dataclass
class Outcome:
    ok: bool
    label: Label
    detail: str = ""


@dataclass
class RunResult:
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    not_started: list[str] = field(default_factory=list)
    interrupted: bool = False

    @property
    def ok(self) -> bool:
        return not self.interrupted and not self.not_started and all(o.ok for o in self.outcomes.values())


def run_graph(
    dependencies: dict[str, set[str]],
    work: Callable[[str], Outcome],
    max_parallel: int,
    stop: threading.Event | None = None,
    stop_on_failure: bool = True,
    on_outcome: Callable[[str, Outcome], None] | None = None,
) -> RunResult:
    """Runs `work` per node; `on_outcome` hears each outcome as soon as the runner has it."""
    result = RunResult()
    pending = set(dependencies)
    running: dict[Future[Outcome], str] = {}
    stop = stop or threading.Event()
    failed = False

    def ready() -> list[str]:
        return sorted(
            name for name in pending
            if all(dep in result.outcomes and result.outcomes[dep].ok for dep in dependencies[name])
        )

    with ThreadPoolExecutor(max_workers=max(1, max_parallel)) as pool:
        while True:
            if not (failed and stop_on_failure) and not stop.is_set():
                for name in ready():
                    if len(running) >= max_parallel:
                        break
                    pending.discard(name)
                    running[pool.submit(work, name)] = name
            if not running:
                break
            try:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
            except KeyboardInterrupt:
                stop.set()
                result.interrupted = True
                continue
            for future in done:
                name = running.pop(future)
                result.outcomes[name] = _outcome(future)
                failed = failed or not result.outcomes[name].ok
                if on_outcome:
                    on_outcome(name, result.outcomes[name])
    result.interrupted = result.interrupted or stop.is_set()
    result.not_started = sorted(pending)
    return result


def _outcome(future: Future[Outcome]) -> Outcome:
    try:
        return future.result()
    except Exception as error:  # a bug or an unexpected API error: report, do not hang
        return Outcome(False, Label.FAILED, f"{type(error).__name__}: {error}")


def reverse_graph(dependencies: dict[str, set[str]]) -> dict[str, set[str]]:
    """For deletion: a stack waits until every stack depending on it is gone."""
    reverse: dict[str, set[str]] = {name: set() for name in dependencies}
    for name, deps in dependencies.items():
        for dep in deps:
            reverse[dep].add(name)
    return reverse


def critical_path_seconds(dependencies: dict[str, set[str]], durations: dict[str, float]) -> float:
    finish: dict[str, float] = {}

    def finish_time(name: str) -> float:
        if name not in finish:
            finish[name] = durations[name] + max((finish_time(d) for d in dependencies[name]), default=0.0)
        return finish[name]

    return max((finish_time(n) for n in dependencies), default=0.0)

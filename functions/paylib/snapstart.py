"""Lambda SnapStart runtime hooks (see docs/payments.md for where SnapStart is on and why).

With SnapStart, one snapshot of an initialised function is restored into many execution
environments, possibly days after it was taken. What must not be shared or kept from the
snapshot is renewed after each restore:
- randomness: the `random` module's state would be identical in every restored environment
  (botocore draws its retry jitter from it); it is re-seeded from the OS. Payment ids and UUIDs
  come from os.urandom (`secrets`, uuid4) and need nothing.
- AWS clients: their connection pools and credentials belong to the environment that took the
  snapshot; the cached clients are dropped and created again on first use.
- cached secrets: the fingerprint keyring may have been rotated since the snapshot; it is
  dropped and read again on first use. Nothing secret is read before the snapshot.
Before the snapshot, the clients a function uses are created once, so the service models are
loaded into the snapshot rather than after every restore.

`snapshot_restore_py` exists only in the Lambda managed runtime; elsewhere the hooks are not
registered (and never needed), and tests call them directly.
"""
from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from . import aws, keys
from .aws import ServiceName

try:
    import snapshot_restore_py
except ImportError:  # not a Lambda managed runtime: no snapshot will ever be taken here
    snapshot_restore_py = None


def before_snapshot(services: Iterable[ServiceName]) -> None:
    for service in services:
        aws.client(service)


def after_restore() -> None:
    random.seed()  # fresh OS entropy: every restored environment gets its own sequence
    aws.reset()
    keys.clear_cache()


class Runtime(Protocol):
    """What the Lambda runtime's snapshot_restore_py offers (tests pass their own)."""

    def register_before_snapshot(self, hook: Callable[..., None], *args: Any) -> None: ...

    def register_after_restore(self, hook: Callable[[], None]) -> None: ...


def register(services: Iterable[ServiceName], runtime: Runtime | None = None) -> bool:
    """Register the hooks with the runtime; False where there is no SnapStart runtime."""
    runtime = runtime or snapshot_restore_py
    if runtime is None:
        return False
    runtime.register_before_snapshot(before_snapshot, tuple(services))
    runtime.register_after_restore(after_restore)
    return True

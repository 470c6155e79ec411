"""What a review was made of: the commit, the build's manifest hash, the account and region, the time.

`plan` records it in review.json; `execute` gathers it again and refuses when the commit, the
manifest hash, the account or the region differ (the time only says when the review was made).
The commit comes from GITHUB_SHA when set (CI), else from git; without either it is "unknown",
never an error. The account comes from one sts:GetCallerIdentity call.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from .aws import Context
from .manifest import Manifest

UNKNOWN = "unknown"
COMMIT_VARIABLES = ("GITHUB_SHA", "CI_COMMIT_SHA")  # CI systems that check out a detached commit
# What must be the same at execute as at plan, in the order a refusal names them.
IDENTITY_FIELDS = ("commit", "manifest_sha256", "account", "region")
GitRunner = Callable[[Path], str | None]


@dataclass(frozen=True)
class Provenance:
    commit: str
    manifest_sha256: str
    account: str
    region: str
    reviewed_at: str  # ISO 8601, UTC, seconds

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


TOOL_ROOT = Path(__file__).resolve().parent.parent  # the checkout deploy.py runs from


def git_head(directory: Path) -> str | None:
    """The commit checked out around `directory` (a build directory outside any repository, as
    `make e2e` uses, falls back to the checkout of deploy.py), or None (no git, no repository)."""
    for where in (directory, TOOL_ROOT):
        try:
            result = subprocess.run(["git", "-C", str(where), "rev-parse", "HEAD"],
                                    capture_output=True, text=True, timeout=10, check=False)
        except (OSError, subprocess.SubprocessError):
            return None
        commit = result.stdout.strip()
        if result.returncode == 0 and commit:
            return commit
    return None


def current_commit(directory: Path, environ: Mapping[str, str] | None = None, git: GitRunner = git_head) -> str:
    variables = os.environ if environ is None else environ
    for name in COMMIT_VARIABLES:
        if variables.get(name, "").strip():
            return variables[name].strip()
    return git(directory) or UNKNOWN


def manifest_digest(manifest: Manifest) -> str:
    """sha256 of manifest.json: it names every template and artifact by its own sha256."""
    return hashlib.sha256(manifest.path.read_bytes()).hexdigest()


def gather(ctx: Context, manifest: Manifest, environ: Mapping[str, str] | None = None,
           git: GitRunner = git_head) -> Provenance:
    caller = ctx.client("sts", manifest.region).call("get_caller_identity")
    return Provenance(
        commit=current_commit(manifest.build_dir, environ, git),
        manifest_sha256=manifest_digest(manifest),
        account=str(caller.get("Account", UNKNOWN)),
        region=manifest.region,
        reviewed_at=ctx.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ"),
    )


def differences(reviewed: Mapping[str, object], current: Provenance) -> list[str]:
    """What differs between the reviewed plan's provenance and now, one readable line each."""
    now = current.as_dict()
    return [f"{name} was {reviewed.get(name)!s} at review, is {now[name]} now"
            for name in IDENTITY_FIELDS if reviewed.get(name) != now[name]]

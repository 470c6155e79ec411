#!/usr/bin/env python3
"""Change-set deploys of the payment platform's CloudFormation stacks.

    python deploy.py {preflight,plan,deploy,bootstrap,execute,destroy,recover,adopt,status,outputs} --env ENV
        [--yes] [--force] [--drift] [--fix] [--stack STACK] [--force-delete] [--no-rollback-triggers]
        [--allow-replace LOGICAL_ID ...] [--build-dir build] [--max-parallel N] [--poll-seconds S]

Reads only build/<env>/manifest.json and the files it names (see docs/manifest.md).
preflight (also the first step of plan, deploy, execute and destroy) checks the account
read-only and refuses with every problem at once. deploy and execute write build/<env>/deployed.json
(what is deployed where) and publish it to the artifact bucket under manifests/<env>/.
Region and profile come from the usual AWS environment variables; AWS_ENDPOINT_URL is honoured
by boto3 itself. How it works, the guards and what an emulator cannot show: docs/deploy.md.
"""
from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import ResponseParserError

from deploylib.aws import ClientFactory, Context, Interrupted
from deploylib.cli import Options
from deploylib.commands import COMMANDS
from deploylib.errors import INTERRUPTED_EXIT, REFUSED_EXIT, DeployError
from deploylib.manifest import load_manifest
from deploylib.output import Printer

ENVIRONMENTS = ("dev", "staging", "prod", "local")
NEEDS_STACK = ("recover", "adopt")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="deploy.py", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=sorted(COMMANDS))
    parser.add_argument("--env", required=True, choices=ENVIRONMENTS, help="environment")
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation (CI)")
    parser.add_argument("--force", action="store_true", help="allow destroying prod")
    parser.add_argument("--drift", action="store_true", help="status: run drift detection")
    parser.add_argument("--fix", action="store_true", help="preflight: create missing service-linked roles")
    parser.add_argument("--stack", help="recover, adopt: the stack (name or layer)")
    parser.add_argument("--force-delete", action="store_true",
                        help="recover a DELETE_FAILED stack with FORCE_DELETE_STACK instead of RetainResources")
    parser.add_argument("--no-rollback-triggers", action="store_true",
                        help="no alarm rollback triggers for this run (a hotfix during an incident)")
    parser.add_argument("--allow-replace", nargs="+", default=[], metavar="LOGICAL_ID",
                        help="stateful resources this run may replace or remove")
    parser.add_argument("--build-dir", default="build", type=Path)
    parser.add_argument("--max-parallel", type=int, default=4)
    parser.add_argument("--poll-seconds", type=float, default=5.0)
    args = parser.parse_args(argv)
    if args.max_parallel < 1:
        parser.error("--max-parallel must be at least 1")
    if args.command in NEEDS_STACK and not args.stack:
        parser.error(f"{args.command} needs --stack (STACK=<name or layer> with make)")
    return args


def endpoint_is_local() -> bool:
    """True when boto3 is pointed at an emulator on this machine (loopback only)."""
    url = os.environ.get("AWS_ENDPOINT_URL_CLOUDFORMATION") or os.environ.get("AWS_ENDPOINT_URL")
    host = urlparse(url).hostname if url else None
    if not host:
        return False
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def options_from(args: argparse.Namespace, overrides: dict | None) -> Options:
    return Options(
        yes=args.yes, force=args.force, drift=args.drift, fix=args.fix, stack=args.stack,
        force_delete=args.force_delete, rollback_triggers=not args.no_rollback_triggers,
        configured_region=boto3.session.Session().region_name,
        allow_replace=set(args.allow_replace), max_parallel=args.max_parallel, **(overrides or {}),
    )


def main(
    argv: list[str] | None = None,
    client_factory: Callable[[str, str], Any] | None = None,
    context: Context | None = None,
    printer: Printer | None = None,
    options_override: dict | None = None,
) -> int:
    """Entry point; tests pass a client factory (the in-memory fake) or a whole context."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    printer = printer or Printer()
    if args.env == "local" and context is None and client_factory is None and not endpoint_is_local():
        printer.line("error: the local environment lives in the emulator only: set AWS_ENDPOINT_URL to its "
                     "loopback address (`make emulator` prints it), or use `make e2e`")
        return 2
    ctx = context or Context(client_factory=client_factory or ClientFactory(), poll_seconds=args.poll_seconds)
    try:
        manifest = load_manifest(args.build_dir, args.env)
        return COMMANDS[args.command](ctx, manifest, printer, options_from(args, options_override))
    except FileNotFoundError as error:
        printer.line(f"error: {error}")
        return REFUSED_EXIT
    except (ClientError, BotoCoreError) as error:
        printer.line(f"error: AWS call failed: {error}")
        return 1
    except ResponseParserError as error:
        printer.line(f"error: the endpoint answered with something that is not an AWS response: "
                     f"{str(error).splitlines()[0]}")
        return 1
    except (KeyboardInterrupt, Interrupted):
        ctx.stop.set()
        printer.line("\ninterrupted: nothing further was started; operations already running go on in "
                     "CloudFormation (`make status` shows them)")
        return INTERRUPTED_EXIT
    except DeployError as error:  # the one root of deploy-side errors: its message and its exit code
        printer.line(f"error: {error}")
        return error.exit_code


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Change-set deploys of the payment platform's CloudFormation stacks.

    python deploy.py {plan,deploy,execute,destroy,status,outputs} --env ENV
        [--yes] [--force] [--drift] [--allow-replace LOGICAL_ID ...] [--build-dir build]
        [--max-parallel N] [--poll-seconds S]

Reads only build/<env>/manifest.json and the files it names (see docs/manifest.md).
deploy and execute write build/<env>/deployed.json (what is deployed where) and publish it to the
artifact bucket under manifests/<env>/.
Region and profile come from the usual AWS environment variables; AWS_ENDPOINT_URL is honoured
by boto3 itself. How it works, the guards and what an emulator cannot show: docs/deploy.md.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable

from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import ResponseParserError

from deploylib.aws import ClientFactory, Context
from deploylib.commands import COMMANDS, Options
from deploylib.manifest import ManifestError, load_manifest
from deploylib.output import Printer


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="deploy.py", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=sorted(COMMANDS))
    parser.add_argument("--env", required=True, choices=("dev", "staging", "prod"), help="environment")
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation (CI)")
    parser.add_argument("--force", action="store_true", help="allow destroying prod")
    parser.add_argument("--drift", action="store_true", help="status: run drift detection")
    parser.add_argument("--allow-replace", nargs="+", default=[], metavar="LOGICAL_ID",
                        help="stateful resources this run may replace or remove")
    parser.add_argument("--build-dir", default="build", type=Path)
    parser.add_argument("--max-parallel", type=int, default=4)
    parser.add_argument("--poll-seconds", type=float, default=5.0)
    args = parser.parse_args(argv)
    if args.max_parallel < 1:
        parser.error("--max-parallel must be at least 1")
    return args


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
    ctx = context or Context(client_factory=client_factory or ClientFactory(), poll_seconds=args.poll_seconds)
    options = Options(yes=args.yes, force=args.force, drift=args.drift, allow_replace=set(args.allow_replace),
                      max_parallel=args.max_parallel, **(options_override or {}))
    try:
        manifest = load_manifest(args.build_dir, args.env)
        return COMMANDS[args.command](ctx, manifest, printer, options)
    except (ManifestError, FileNotFoundError) as error:
        printer.line(f"error: {error}")
        return 2
    except (ClientError, BotoCoreError) as error:
        printer.line(f"error: AWS call failed: {error}")
        return 1
    except ResponseParserError as error:
        printer.line(f"error: the endpoint answered with something that is not an AWS response: "
                     f"{str(error).splitlines()[0]}")
        return 1


if __name__ == "__main__":
    sys.exit(main())

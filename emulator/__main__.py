"""python -m emulator [--port N] [--region R]

Starts the emulator on 127.0.0.1 (port 0, the default: a free port), prints one line
"emulator ready: http://127.0.0.1:<port> (account 123456789012, region <R>)" on stdout, the
provisioned certificate's ARN on stderr, and runs until SIGINT or SIGTERM.
"""
from __future__ import annotations

import argparse
import signal
import sys
import threading

from .provision import CERTIFICATE_DOMAIN
from .server import ACCOUNT_ID, DEFAULT_REGION, Emulator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emulator", description="Local AWS emulator (moto + compatibility layer)")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: pick a free one)")
    parser.add_argument("--region", default=DEFAULT_REGION, help=f"region of the provisioned resources (default {DEFAULT_REGION})")
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error("--port must be between 0 and 65535")
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    emulator = Emulator(region=args.region, port=args.port)
    try:
        emulator.start()
    except OSError as error:
        print(f"emulator: cannot listen on 127.0.0.1:{args.port}: {error}", file=sys.stderr)
        return 1
    print(f"certificate for {CERTIFICATE_DOMAIN}: {emulator.certificate_arn}", file=sys.stderr)
    print(f"emulator ready: {emulator.endpoint_url} (account {ACCOUNT_ID}, region {args.region})", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

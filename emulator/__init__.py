"""A local AWS emulator on top of moto's server, able to deploy the platform's real build.

    python -m emulator [--port N] [--region R]

    from emulator import start
    with start(region="eu-west-1") as emu:          # in this process (patches moto here)
        os.environ["AWS_ENDPOINT_URL"] = emu.endpoint_url
        ...
    with spawn(region="eu-west-1") as emu:          # in a child process (this one's moto untouched)
        ...

What it adds to moto (the compatibility layer, emulator.compat) and which resource types it
creates, emulates or only records (emulator.coverage) are documented in those modules.
"""
from __future__ import annotations

from .process import EmulatorProcess, spawn
from .provision import ACCOUNT_ID, CERTIFICATE_DOMAIN, certificate_arn, powertools_layer_arn
from .server import DEFAULT_REGION, Emulator, start

__all__ = ["ACCOUNT_ID", "CERTIFICATE_DOMAIN", "DEFAULT_REGION", "Emulator", "EmulatorProcess", "certificate_arn",
           "powertools_layer_arn", "spawn", "start"]

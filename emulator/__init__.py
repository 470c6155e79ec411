"""A local AWS emulator on top of moto's server, able to deploy the platform's real build.

    python -m emulator [--port N] [--region R]

    from emulator import start
    with start(region="eu-west-1") as emu:
        os.environ["AWS_ENDPOINT_URL"] = emu.endpoint_url
        ...

What it adds to moto (the compatibility layer, emulator.compat) and which resource types it
creates, emulates or only records (emulator.coverage) are documented in those modules.
"""
from __future__ import annotations

from .provision import ACCOUNT_ID, CERTIFICATE_DOMAIN, certificate_arn, powertools_layer_arn
from .server import DEFAULT_REGION, Emulator, start

__all__ = ["ACCOUNT_ID", "CERTIFICATE_DOMAIN", "DEFAULT_REGION", "Emulator", "certificate_arn",
           "powertools_layer_arn", "start"]

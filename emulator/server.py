"""The emulator: moto's ThreadedMotoServer on 127.0.0.1 with the compatibility layer applied."""
from __future__ import annotations

import logging
import os
from typing import Any, Self

from . import provision as provisioning

DEFAULT_REGION = "eu-west-1"
ACCOUNT_ID = provisioning.ACCOUNT_ID
HOST = "127.0.0.1"

# Environment the server process needs: fake credentials (the account id comes from them),
# Lambda without Docker. Set only when absent, never pointing anywhere but here.
_SERVER_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "MOTO_ACCOUNT_ID": ACCOUNT_ID,
}


class EmulatorEndpoint:
    """What a running emulator offers, in this process (Emulator) or in a child (EmulatorProcess):
    its endpoint, boto3 clients and the environment pointing boto3 (and deploy.py) at it."""

    def __init__(self, region: str = DEFAULT_REGION, port: int = 0):
        self.region = region
        self.account_id = ACCOUNT_ID
        self._requested_port = port
        self.port: int | None = None

    @property
    def endpoint_url(self) -> str:
        if self.port is None:
            raise RuntimeError("the emulator is not running")
        return f"http://{HOST}:{self.port}"

    @property
    def certificate_arn(self) -> str:
        return provisioning.certificate_arn(self.region, self.account_id)

    @property
    def powertools_layer_arn(self) -> str:
        return provisioning.powertools_layer_arn(self.region)

    @property
    def running(self) -> bool:
        raise NotImplementedError

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def client(self, service: str, region: str | None = None) -> Any:
        """A boto3 client for this emulator (fake credentials, never a real endpoint)."""
        import boto3

        return boto3.client(service, region_name=region or self.region, endpoint_url=self.endpoint_url,
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def environment(self) -> dict[str, str]:
        """Environment variables that point boto3 (and deploy.py) at this emulator."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
        }

    def __enter__(self) -> Self:
        if not self.running:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Emulator(EmulatorEndpoint):
    """A running emulator in this process. Use as a context manager, or call stop()."""

    def __init__(self, region: str = DEFAULT_REGION, port: int = 0):
        super().__init__(region, port)
        self._server: Any = None
        self.provisioned: provisioning.Provisioned | None = None

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> Emulator:
        for key, value in _SERVER_ENVIRONMENT.items():
            os.environ.setdefault(key, value)
        from . import compat

        compat.apply()
        from moto.moto_server.threaded_moto_server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._server = ThreadedMotoServer(ip_address=HOST, port=self._requested_port, verbose=False)
        self._server.start()
        _, self.port = self._server.get_host_and_port()
        self.provisioned = provisioning.provision(self.region, self.account_id)
        from .compat.cloudformation import RESET_HOOKS

        RESET_HOOKS.append(self._provision_again)
        return self

    def _provision_again(self) -> None:
        self.provisioned = provisioning.provision(self.region, self.account_id)

    def reset(self) -> None:
        """Forgets every resource and stack (moto's backends and the emulator's CloudFormation)
        and provisions again what AWS owns. Over HTTP: moto's POST /moto-api/reset."""
        from moto.moto_api._internal.models import moto_api_backend

        moto_api_backend.reset()

    def stop(self) -> None:
        if self._server is not None:
            from .compat.cloudformation import RESET_HOOKS

            if self._provision_again in RESET_HOOKS:
                RESET_HOOKS.remove(self._provision_again)
            self._server.stop()
            self._server = None


def start(region: str = DEFAULT_REGION, port: int = 0) -> Emulator:
    """Starts an emulator on 127.0.0.1 (port 0: a free one) and returns it."""
    return Emulator(region=region, port=port).start()

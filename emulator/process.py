"""The emulator in a child process (`python -m emulator`), with the same interface as Emulator.

The compatibility layer patches moto for the whole Python process it runs in. A test suite that
also uses moto in-process (mock_aws, as the project's deploy tests do) must not see those
patches: it starts the emulator with spawn() instead of start().
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from . import provision as provisioning
from .server import ACCOUNT_ID, DEFAULT_REGION

_READY = re.compile(r"emulator ready: (http://127\.0\.0\.1:(\d+)) \(account (\d{12}), region ([a-z0-9-]+)\)")


class EmulatorProcess:
    def __init__(self, region: str = DEFAULT_REGION, port: int = 0):
        self.region = region
        self.account_id = ACCOUNT_ID
        self._requested_port = port
        self._process: subprocess.Popen | None = None
        self.endpoint_url = ""
        self.port: int | None = None

    @property
    def certificate_arn(self) -> str:
        return provisioning.certificate_arn(self.region, self.account_id)

    @property
    def powertools_layer_arn(self) -> str:
        return provisioning.powertools_layer_arn(self.region)

    def start(self) -> EmulatorProcess:
        root = Path(__file__).resolve().parent.parent
        environment = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        environment.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                           PYTHONPATH=os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])))
        self._process = subprocess.Popen(
            [sys.executable, "-m", "emulator", "--port", str(self._requested_port), "--region", self.region],
            cwd=root, env=environment, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self._process.stdout.readline()
        match = _READY.search(line)
        if not match:
            self.stop()
            raise RuntimeError(f"the emulator did not start (it printed {line!r})")
        self.endpoint_url, self.port = match.group(1), int(match.group(2))
        return self

    def reset(self) -> None:
        """Clears every resource and stack; AWS-owned things are provisioned again."""
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", data=b"", method="POST")
        with urllib.request.urlopen(request, timeout=60):
            pass

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._process is not None and self._process.stdout:
            self._process.stdout.close()
        self._process = None

    def client(self, service: str, region: str | None = None):
        import boto3

        return boto3.client(service, region_name=region or self.region, endpoint_url=self.endpoint_url,
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def environment(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": self.region, "AWS_REGION": self.region,
        }

    def __enter__(self) -> EmulatorProcess:
        if self._process is None:
            self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def spawn(region: str = DEFAULT_REGION, port: int = 0) -> EmulatorProcess:
    """Starts `python -m emulator` in a child process and returns once it is ready."""
    return EmulatorProcess(region=region, port=port).start()

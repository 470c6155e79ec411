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

from .server import DEFAULT_REGION, EmulatorEndpoint

_READY = re.compile(r"emulator ready: (http://127\.0\.0\.1:(\d+)) \(account (\d{12}), region ([a-z0-9-]+)\)")


class EmulatorProcess(EmulatorEndpoint):
    """A running emulator in a child process (`python -m emulator`)."""

    def __init__(self, region: str = DEFAULT_REGION, port: int = 0):
        super().__init__(region, port)
        self._process: subprocess.Popen[str] | None = None

    @property
    def running(self) -> bool:
        return self._process is not None

    def start(self) -> EmulatorProcess:
        root = Path(__file__).resolve().parent.parent
        environment = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        environment.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                           PYTHONPATH=os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])))
        self._process = subprocess.Popen(
            [sys.executable, "-m", "emulator", "--port", str(self._requested_port), "--region", self.region],
            cwd=root, env=environment, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self._process.stdout.readline() if self._process.stdout else ""
        match = _READY.search(line)
        if not match:
            self.stop()
            raise RuntimeError(f"the emulator did not start (it printed {line!r})")
        self.port = int(match.group(2))
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


def spawn(region: str = DEFAULT_REGION, port: int = 0) -> EmulatorProcess:
    """Starts `python -m emulator` in a child process and returns once it is ready."""
    return EmulatorProcess(region=region, port=port).start()

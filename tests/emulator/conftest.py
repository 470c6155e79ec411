"""Fixtures for the emulator tests: one emulator per test session, reset between tests.

The emulator runs in a child process (emulator.spawn): its compatibility layer patches moto for
the process it runs in, and the rest of the suite (tests/deploy) uses moto in-process, possibly
in the same pytest-xdist worker. Each test starts from a reset state (moto's backends and the
emulator's stacks cleared, AWS-owned things provisioned again).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

REGION = "eu-west-1"


@pytest.fixture(scope="session")
def emulator_server():
    import emulator

    server = emulator.spawn(region=REGION)
    yield server
    server.stop()


@pytest.fixture
def emu(emulator_server, monkeypatch):
    """A freshly reset emulator; boto3 (and deploy.py) in this test talk to it."""
    emulator_server.reset()
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL_CLOUDFORMATION", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    for key, value in emulator_server.environment().items():
        monkeypatch.setenv(key, value)
    return emulator_server


@pytest.fixture
def cfn(emu):
    return emu.client("cloudformation")


@pytest.fixture(autouse=True)
def _no_real_aws(monkeypatch):
    """Belt and braces: fake credentials for every boto3 client made in these tests."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    os.environ.pop("AWS_PROFILE", None)

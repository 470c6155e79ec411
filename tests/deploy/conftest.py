"""Fixtures for deploy tests: fake credentials, moto S3/STS, the fake CloudFormation."""
from __future__ import annotations

import sys
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

sys.path.insert(0, str(Path(__file__).resolve().parent))

from synthetic_env import SyntheticEnvironment, fake_world, standard_layers  # noqa: E402


@pytest.fixture
def aws_env(monkeypatch):
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_CLOUDFORMATION", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")


@pytest.fixture
def moto_aws(aws_env):
    with mock_aws():
        yield boto3.client("s3", region_name="eu-west-1")


@pytest.fixture
def world(moto_aws):
    return fake_world(moto_aws)


@pytest.fixture
def env(tmp_path):
    environment = SyntheticEnvironment(tmp_path, "staging")
    standard_layers(environment)
    environment.write()
    return environment


@pytest.fixture
def dev_env(tmp_path):
    environment = SyntheticEnvironment(tmp_path, "dev")
    standard_layers(environment)
    environment.write()
    return environment

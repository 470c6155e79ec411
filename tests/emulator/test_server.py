"""Starting and stopping the emulator: Python API and `python -m emulator`."""
from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from templates_src.compute_functions import POWERTOOLS_LAYER_SSM_PATH

ROOT = Path(__file__).resolve().parents[2]


def test_spawned_emulator_listens_on_localhost_with_a_random_port(emulator_server):
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", emulator_server.endpoint_url)
    assert emulator_server.port != 0
    sts = boto3.client("sts", endpoint_url=emulator_server.endpoint_url, region_name="eu-west-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    assert sts.get_caller_identity()["Account"] == "123456789012"


IN_PROCESS = """
import boto3, emulator
with emulator.start(region="eu-central-1") as emu:
    assert emu.endpoint_url.startswith("http://127.0.0.1:") and emu.port
    cfn = boto3.client("cloudformation", endpoint_url=emu.endpoint_url, region_name="eu-central-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    assert cfn.describe_stacks()["Stacks"] == []
    acm = boto3.client("acm", endpoint_url=emu.endpoint_url, region_name="eu-central-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    assert acm.describe_certificate(CertificateArn=emu.certificate_arn)["Certificate"]["Status"] == "ISSUED"
print("stopped cleanly")
"""


def test_in_process_api_is_a_context_manager():
    # in a child process: start() patches moto for the process it runs in
    result = subprocess.run([sys.executable, "-c", IN_PROCESS], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "stopped cleanly\n"


def test_certificate_arn_is_the_same_at_every_start(emulator_server):
    import emulator

    assert emulator_server.certificate_arn == emulator.certificate_arn("eu-west-1")
    assert emulator.certificate_arn("eu-west-1") == emulator.certificate_arn("eu-west-1")
    described = emulator_server.client("acm").describe_certificate(CertificateArn=emulator_server.certificate_arn)["Certificate"]
    assert described["Status"] == "ISSUED"
    assert set(described["SubjectAlternativeNames"]) == {"api.local.payments.test", "*.local.payments.test"}


def test_powertools_parameter_and_layer_are_provisioned(emu):
    value = emu.client("ssm").get_parameter(Name=POWERTOOLS_LAYER_SSM_PATH)["Parameter"]["Value"]
    assert re.fullmatch(r"arn:aws:lambda:eu-west-1:017000801446:layer:AWSLambdaPowertoolsPythonV3-python312-arm64:\d+", value)
    assert emu.client("lambda").get_layer_version_by_arn(Arn=value)["LayerVersionArn"] == value


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_cli_prints_one_ready_line_and_stops_cleanly(stop_signal):
    process = subprocess.Popen([sys.executable, "-m", "emulator", "--port", "0", "--region", "eu-west-1"], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        match = re.fullmatch(r"emulator ready: (http://127\.0\.0\.1:\d+) \(account 123456789012, region eu-west-1\)\n", line)
        assert match, line
        cfn = boto3.client("cloudformation", endpoint_url=match.group(1), region_name="eu-west-1",
                           aws_access_key_id="testing", aws_secret_access_key="testing")
        assert cfn.describe_stacks()["Stacks"] == []
        process.send_signal(stop_signal)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0
    assert stdout == ""
    assert "Traceback" not in stderr
    assert "certificate for api.local.payments.test: arn:aws:acm:eu-west-1:123456789012:certificate/" in stderr

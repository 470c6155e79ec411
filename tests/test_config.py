"""Parameter files: every bad input stops the build with the file, the key path and the reason."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from templates_src.config import PARAMETERS_DIR, ConfigError, load_environment, load_environments

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def parameters(tmp_path):
    """A writable copy of the real parameter files; edit(env, mutate) changes one of them."""
    target = tmp_path / "parameters"
    shutil.copytree(PARAMETERS_DIR, target)

    def edit(env, mutate):
        path = target / f"{env}.yaml"
        data = yaml.safe_load(path.read_text())
        mutate(data)
        path.write_text(yaml.safe_dump(data))
        return target

    edit.dir = target
    return edit


def test_real_files_load():
    configs = load_environments()
    assert [c.network.cidr for c in configs.values()] == ["10.0.0.0/16", "10.1.0.0/16", "10.2.0.0/16"]
    assert {c.name: c.network.nat for c in configs.values()} == {"dev": "none", "staging": "single", "prod": "per_az"}
    assert configs["prod"].dr.enabled and not configs["dev"].dr.enabled


def _error(parameters_dir, env="dev"):
    with pytest.raises(ConfigError) as caught:
        load_environments(parameters_dir=parameters_dir)
    return str(caught.value)


def test_unknown_key_names_file_and_path(parameters):
    directory = parameters("dev", lambda d: d["network"].update(nat_gateways=2))
    message = _error(directory)
    assert "dev.yaml" in message and "network.nat_gateways: unknown key" in message


def test_missing_key(parameters):
    directory = parameters("staging", lambda d: d["monitoring"].pop("alarm_email"))
    message = _error(directory)
    assert "staging.yaml" in message and "monitoring.alarm_email: missing key" in message


@pytest.mark.parametrize("cidr", ["10.0.0.0/33", "10.0.0.1/16", "banana", "10.3.0.0/20", "8.8.0.0/16"])
def test_bad_cidr(parameters, cidr):
    directory = parameters("dev", lambda d: d["network"].update(cidr=cidr))
    assert "network.cidr" in _error(directory)


def test_overlapping_cidrs_between_environments(parameters):
    directory = parameters("staging", lambda d: d["network"].update(cidr="10.0.0.0/16"))
    message = _error(directory)
    assert "network.cidr" in message and "overlaps" in message and "staging.yaml" in message


@pytest.mark.parametrize("email", ["not-an-email", "a@b", "x@@example.com", ""])
def test_bad_email(parameters, email):
    directory = parameters("prod", lambda d: d["monitoring"].update(alarm_email=email))
    message = _error(directory)
    assert "prod.yaml" in message and "monitoring.alarm_email" in message


@pytest.mark.parametrize(
    "mutate, path",
    [
        (lambda d: d["data"]["aurora"].update(backup_retention_days=36), "data.aurora.backup_retention_days"),
        (lambda d: d.update(log_retention_days=17), "log_retention_days"),
        (lambda d: d["compute"].update(lambda_reserved_concurrency=0), "compute.lambda_reserved_concurrency"),
        (lambda d: d["compute"]["ecs"].update(min_tasks=5, max_tasks=2), "compute.ecs"),
        (lambda d: d["network"].update(availability_zones=["eu-west-1a", "eu-west-1b"]), "network.availability_zones"),
        (lambda d: d["network"].update(availability_zones=["eu-west-1a"] * 3), "network.availability_zones"),
        (lambda d: d["network"].update(nat="two"), "network.nat"),
        (lambda d: d.update(stateful_deletion_policy="Retain"), "stateful_deletion_policy"),
    ],
)
def test_values_out_of_range(parameters, mutate, path):
    message = _error(parameters("dev", mutate))
    assert "dev.yaml" in message and path in message


def test_zone_outside_region(parameters):
    message = _error(parameters("dev", lambda d: d["network"].update(availability_zones=["us-east-1a", "eu-west-1b", "eu-west-1c"])))
    assert "not a zone of eu-west-1" in message


def test_prod_may_not_delete_data(parameters):
    message = _error(parameters("prod", lambda d: d.update(stateful_deletion_policy="Delete")))
    assert "prod must Retain or Snapshot" in message


def test_yaml_syntax_error(parameters):
    (parameters.dir / "dev.yaml").write_text("region: [unclosed\n")
    assert "not valid YAML" in _error(parameters.dir)


def test_file_must_be_mapping(parameters):
    (parameters.dir / "dev.yaml").write_text("- just\n- a list\n")
    assert "must be a mapping" in _error(parameters.dir)


def test_unknown_environment():
    with pytest.raises(ConfigError, match="unknown environment 'qa'"):
        load_environment("qa")


def test_build_cli_reports_config_error_without_traceback(parameters, tmp_path):
    directory = parameters("dev", lambda d: d["network"].update(cidr="10.0.0.0/33"))
    script = (
        "import sys, templates_src.config as c, pathlib; c.PARAMETERS_DIR = pathlib.Path(sys.argv[1]);"
        "import build; build.load_environments.__defaults__ = ((\"dev\",\"staging\",\"prod\"), c.PARAMETERS_DIR);"
        "sys.exit(build.main(['--env','dev','--no-lint','--build-dir', sys.argv[2]]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(directory), str(tmp_path / "out")],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "dev.yaml" in result.stderr and "network.cidr" in result.stderr

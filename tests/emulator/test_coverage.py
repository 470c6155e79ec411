"""The coverage table (docs are generated from it) matches what the emulator does."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from emulator.coverage import CREATED, EMULATED, RECORDED, RESOURCE_NOTES, RESOURCE_SUPPORT, support_level, table_rows

ROOT = Path(__file__).resolve().parents[2]
# in a child process: compat.apply() patches moto for the process it runs in
PROVIDERS = """
import json
from emulator import compat
from emulator.coverage import RESOURCE_SUPPORT
from emulator.compat.cloudformation.providers import custom_providers, provider_for
compat.apply()
print(json.dumps({"levels": {t: getattr(provider_for(t, "eu-west-1"), "support", None) for t in RESOURCE_SUPPORT},
                  "custom": sorted(custom_providers())}))
"""


@pytest.fixture(scope="module")
def providers():
    result = subprocess.run([sys.executable, "-c", PROVIDERS], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_every_type_of_every_environment_is_in_the_table(built_environments):
    used = {body["Type"] for data in built_environments.values() for template in data["templates"].values()
            for body in template["Resources"].values()}
    assert used - set(RESOURCE_SUPPORT) == set()


def test_table_matches_the_providers(providers):
    assert providers["levels"] == RESOURCE_SUPPORT
    assert set(providers["custom"]) <= set(RESOURCE_SUPPORT)


def test_every_entry_has_a_level_and_a_note():
    assert set(RESOURCE_SUPPORT.values()) <= {CREATED, EMULATED, RECORDED}
    assert all(RESOURCE_NOTES[t] for t in RESOURCE_SUPPORT)
    assert [row[0] for row in table_rows()] == sorted(RESOURCE_SUPPORT)


def test_support_level_of_types_outside_the_table():
    assert support_level("AWS::Route53::HostedZone") == CREATED  # moto's model
    assert support_level("AWS::Budgets::Budget") == RECORDED
    assert support_level("AWS::Nope::Nope") is None

"""The coverage table (docs are generated from it) matches what the emulator does."""
from __future__ import annotations

import pytest

from emulator import compat
from emulator.coverage import CREATED, EMULATED, RECORDED, RESOURCE_NOTES, RESOURCE_SUPPORT, support_level, table_rows


@pytest.fixture(scope="module")
def providers():
    from emulator.compat.cloudformation.providers import custom_providers, provider_for

    compat.apply()
    return provider_for, custom_providers


def test_every_type_of_every_environment_is_in_the_table(built_environments):
    used = {body["Type"] for data in built_environments.values() for template in data["templates"].values()
            for body in template["Resources"].values()}
    assert used - set(RESOURCE_SUPPORT) == set()


def test_table_matches_the_providers(providers):
    provider_for, custom = providers
    for resource_type, level in RESOURCE_SUPPORT.items():
        provider = provider_for(resource_type, "eu-west-1")
        assert provider is not None, resource_type
        assert provider.support == level, (resource_type, provider.support, level)
    assert set(custom()) <= set(RESOURCE_SUPPORT)


def test_every_entry_has_a_level_and_a_note():
    assert set(RESOURCE_SUPPORT.values()) <= {CREATED, EMULATED, RECORDED}
    assert all(RESOURCE_NOTES[t] for t in RESOURCE_SUPPORT)
    assert [row[0] for row in table_rows()] == sorted(RESOURCE_SUPPORT)


def test_support_level_of_types_outside_the_table(providers):
    assert support_level("AWS::Route53::HostedZone") == CREATED  # moto's model
    assert support_level("AWS::Budgets::Budget") == RECORDED
    assert support_level("AWS::Nope::Nope") is None

"""The contracts build.py and deploylib share (platform_contracts.py)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from platform_contracts import DependencyCycle, changes_permissions, dependency_order


def test_dependencies_come_first_and_ties_go_by_name():
    graph = {"compute": {"data", "network"}, "network": set(), "data": {"network"}, "artifacts": set()}
    assert dependency_order(graph) == ["artifacts", "network", "data", "compute"]


def test_a_cycle_is_named_each_stack_depending_on_the_next():
    with pytest.raises(DependencyCycle) as raised:
        dependency_order({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()})
    cycle = raised.value.cycle
    assert cycle[0] == cycle[-1] and len(cycle) == 4
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}}
    assert all(after in graph[before] for before, after in zip(cycle, cycle[1:], strict=False))
    assert str(raised.value) == " -> ".join(cycle)


@pytest.mark.parametrize("resource_type, expected", [
    ("AWS::IAM::Role", True), ("AWS::IAM::ServiceLinkedRole", True), ("AWS::S3::BucketPolicy", True),
    ("AWS::KMS::Key", True), ("AWS::Lambda::Permission", True),
    ("AWS::S3::Bucket", False), ("AWS::KMS::Alias", False), ("AWS::Lambda::Function", False),
])
def test_permission_changing_types(resource_type, expected):
    assert changes_permissions(resource_type) is expected


def test_the_deploy_tool_does_not_import_troposphere():
    # deploy.py runs where the template toolchain may be absent: the contracts it shares with
    # the build come from platform_contracts, never from templates_src
    code = ("import sys, deploy, deploylib.commands; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('troposphere', 'templates_src', 'awacs')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"

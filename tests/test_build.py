"""The build's own checks: import/export graph, cycles, limits, capabilities, determinism."""
from __future__ import annotations

import hashlib
import zipfile

import pytest

import build
from build import BuildError, StackBuild, capabilities, find_imports, limit_findings, link_stacks
from templates_src.layers import Layer


def stack(name, exports=(), imports=(), metadata=None, body=b"{}", resources=None, bootstrap=False):
    template = {"Resources": resources or {}, "Metadata": metadata or {}}
    return StackBuild(
        layer=Layer(name, module=None, bootstrap=bootstrap),
        name=f"payments-dev-{name}",
        region="eu-west-1",
        body=body,
        template=template,
        exports=list(exports),
        imports=list(imports),
    )


def test_dependencies_come_from_imports_in_topological_order():
    stacks = [
        stack("compute", imports=["payments-dev-network-VpcId", "payments-dev-data-TableArn"]),
        stack("data", exports=["payments-dev-data-TableArn"], imports=["payments-dev-network-VpcId"]),
        stack("network", exports=["payments-dev-network-VpcId"]),
    ]
    ordered = link_stacks(stacks)
    assert [s.layer.name for s in ordered] == ["network", "data", "compute"]
    assert ordered[2].depends_on == ["payments-dev-data", "payments-dev-network"]


def test_import_of_unknown_export_is_an_error():
    with pytest.raises(BuildError, match="imports payments-dev-network-Nope, which no stack"):
        link_stacks([stack("network", exports=["payments-dev-network-VpcId"]), stack("data", imports=["payments-dev-network-Nope"])])


def test_repeated_export_is_an_error():
    with pytest.raises(BuildError, match="published by both"):
        link_stacks([stack("a", exports=["payments-dev-x"]), stack("b", exports=["payments-dev-x"])])


def test_cycle_is_an_error_and_named():
    with pytest.raises(BuildError, match="cycle"):
        link_stacks([
            stack("storage", exports=["payments-dev-storage-B"], imports=["payments-dev-compute-F"]),
            stack("compute", exports=["payments-dev-compute-F"], imports=["payments-dev-storage-B"]),
        ])


def test_cross_region_reference_is_a_dependency():
    reference = {"CrossRegionReferences": [{"Stack": "payments-dev-dr", "Region": "eu-central-1", "Names": ["x"]}]}
    ordered = link_stacks([stack("storage", metadata=reference), stack("dr")])
    assert [s.layer.name for s in ordered] == ["dr", "storage"]
    assert ordered[1].depends_on == ["payments-dev-dr"]
    with pytest.raises(BuildError, match="does not build"):
        link_stacks([stack("storage", metadata=reference)])


def test_import_value_must_be_literal():
    with pytest.raises(BuildError, match="literally"):
        find_imports({"A": {"Fn::ImportValue": {"Fn::Sub": "x-${Env}"}}})
    assert find_imports({"A": [{"Fn::ImportValue": "b"}, {"C": {"Fn::ImportValue": "a"}}]}) == {"a", "b"}


def test_limits_are_errors_past_and_notices_near():
    resources = {f"R{i}": {"Type": "AWS::SNS::Topic"} for i in range(450)}
    errors, notices = limit_findings(stack("big", resources=resources, body=b" " * 45_000))
    assert errors == []
    assert any("450 resources is near the limit of 500" in n for n in notices)
    assert any("near the 51200-byte TemplateBody limit" in n for n in notices)
    errors, _ = limit_findings(stack("huge", resources={f"R{i}": {} for i in range(501)}, body=b" " * 1_000_001))
    assert len(errors) == 2
    errors, notices = limit_findings(stack("artifacts", body=b" " * 60_000, bootstrap=True))
    assert any("bootstrap stack" in e for e in errors)


def test_capabilities_follow_the_template():
    assert capabilities({"Resources": {"T": {"Type": "AWS::SNS::Topic"}}}) == []
    assert capabilities({"Resources": {"R": {"Type": "AWS::IAM::Role", "Properties": {}}}}) == ["CAPABILITY_IAM"]
    assert capabilities({"Resources": {"R": {"Type": "AWS::IAM::Role", "Properties": {"RoleName": "x"}}}}) == [
        "CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"]
    assert capabilities({"Transform": "AWS::SecretsManager-2024-09-16", "Resources": {}}) == ["CAPABILITY_AUTO_EXPAND"]


def test_manifest_describes_every_stack(built_environments):
    for env, data in built_environments.items():
        manifest = data["manifest"]
        assert manifest["environment"] == env and manifest["format"] == 1
        names = {s["name"] for s in manifest["stacks"]}
        position = {s["name"]: i for i, s in enumerate(manifest["stacks"])}
        for entry in manifest["stacks"]:
            body = (data["dir"] / entry["template"]).read_bytes()
            assert hashlib.sha256(body).hexdigest() == entry["sha256"]
            assert entry["template_key"].endswith(entry["sha256"] + ".json")
            assert entry["name"] == f"payments-{env}-{entry['layer']}"
            assert set(entry["depends_on"]) <= names
            assert all(position[d] < position[entry["name"]] for d in entry["depends_on"])
        for artifact in manifest["artifacts"]:
            data_bytes = (data["dir"] / artifact["file"]).read_bytes()
            assert hashlib.sha256(data_bytes).hexdigest() == artifact["sha256"]
            assert artifact["key"] == f"functions/{artifact['name']}/{artifact['sha256']}.zip"


def test_only_bootstrap_stack_has_no_dependencies_beyond_dr(built_environments):
    for data in built_environments.values():
        roots = {s["layer"] for s in data["manifest"]["stacks"] if not s["depends_on"]}
        # delivery imports the artifact bucket only where GitHub roles exist (staging, prod)
        assert roots <= {"artifacts", "delivery", "dr", "network", "security"}
        assert [s["layer"] for s in data["manifest"]["stacks"] if s["bootstrap"]] == ["artifacts"]


def test_build_is_byte_for_byte_repeatable(tmp_path, built_environments):
    from templates_src.config import load_environments

    config = load_environments(("prod",))["prod"]
    build.build_environment(config, tmp_path, run_lint=False)
    first = built_environments["prod"]["dir"]
    second = tmp_path / "prod"
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file() and not p.name.startswith("."))
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file() and not p.name.startswith("."))
    for relative in files:
        assert (first / relative).read_bytes() == (second / relative).read_bytes(), relative


def test_function_zips_are_reproducible_and_complete(built_environments):
    data = built_environments["dev"]
    for artifact in data["manifest"]["artifacts"]:
        with zipfile.ZipFile(data["dir"] / artifact["file"]) as archive:
            names = archive.namelist()
            assert "app.py" in names and any(n.startswith("paylib/") for n in names)
            assert names == sorted(names)
            assert all(info.date_time == (1980, 1, 1, 0, 0, 0) for info in archive.infolist())
            assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)


def test_a_rebuild_removes_only_what_the_build_writes(tmp_path):
    """deploy.py's records (the last plan, review, deployed resources, outputs) survive `make
    build`: plan and deploy build first, and used to lose the previous deploy's record."""
    from templates_src.config import load_environments

    config = load_environments(("dev",))["dev"]
    build.build_environment(config, tmp_path, run_lint=False)
    env_dir = tmp_path / "dev"
    kept = {name: f'{{"written by": "deploy.py", "file": "{name}"}}\n' for name in
            ("deployed.json", "outputs.json", "plan.json", "review.json")}
    for name, text in kept.items():
        (env_dir / name).write_text(text)
    (env_dir / "dr.json").write_text("{}")  # a layer dev no longer has (DR off)
    build.build_environment(config, tmp_path, run_lint=False)
    for name, text in kept.items():
        assert (env_dir / name).read_text() == text, name
    assert not (env_dir / "dr.json").exists()


def test_the_manifest_says_what_the_account_must_provide(built_environments):
    staging = built_environments["staging"]["manifest"]
    preflight = staging["preflight"]
    assert staging["account_id"] == preflight["account_id"] == "222222222222"
    assert preflight["lambda_reserved_concurrency"]["payments-staging-payment-api"] == 20
    assert "payments-staging-restrict-default-sg" not in preflight["lambda_reserved_concurrency"]
    assert preflight["container_image"] == {"repository": "payments-staging-api", "repository_stack": "payments-staging-artifacts",
                                            "tag": "1.0.0", "used_by": ["payments-staging-compute"]}
    assert preflight["certificate"]["mode"] == "create"
    assert [r["role_name"] for r in preflight["service_linked_roles"]] == [
        "AWSServiceRoleForECS", "AWSServiceRoleForApplicationAutoScaling_ECSService"]
    assert preflight["network"]["nat_gateways"] == preflight["network"]["elastic_ips"] == 1
    assert built_environments["prod"]["manifest"]["preflight"]["dr_region"] == "eu-central-1"
    stacks = {s["layer"]: s for s in staging["stacks"]}
    assert stacks["data"]["lifecycle_parameter"] == stacks["compute"]["lifecycle_parameter"] == "StackLifecycle"
    assert stacks["network"]["lifecycle_parameter"] is None
    named = {r["logical_id"]: r["physical_name"] for r in stacks["storage"]["stateful_resources"]}
    assert named["AuditBucket"] == "payments-staging-audit-222222222222-eu-west-1"


def test_rollback_alarms_carry_the_type_of_the_alarm_they_name(built_environments):
    for env in ("staging", "prod"):
        manifest = built_environments[env]["manifest"]
        templates = built_environments[env]["templates"]
        alarms = [alarm for stack in manifest["stacks"] for alarm in stack["rollback_alarms"]]
        assert alarms
        for alarm in alarms:
            value = templates["monitoring"]["Outputs"][alarm["output"]]["Value"]
            assert alarm["type"] == templates["monitoring"]["Resources"][value["Fn::GetAtt"][0]]["Type"]

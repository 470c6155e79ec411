"""The review rules, each against recorded DescribeChangeSet answers (tests/deploy/fixtures/, in
AWS's shape: Scope, Details, and the Target.Path / BeforeValue / AfterValue / AttributeChangeType
that IncludePropertyValues adds) and templates; the review is a pure function of them."""
from __future__ import annotations

import datetime
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from deploylib.changesets import ChangeSet
from deploylib.manifest import StackSpec
from deploylib.plans import Action, StackPlan
from deploylib.provenance import Provenance, current_commit, differences
from deploylib.review import review_document
from deploylib.review_render import MARKDOWN_LIMIT, WIDTH, render_markdown, render_text

FIXTURES = Path(__file__).parent / "fixtures"
PROVENANCE = Provenance(commit="0123456789abcdef0123456789abcdef01234567", manifest_sha256="ab" * 32,
                        account="123456789012", region="eu-west-1", reviewed_at="2026-11-27T10:00:00Z")


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def spec_for(tmp_path: Path, name: str, template: dict[str, Any], **extra: Any) -> StackSpec:
    body = json.dumps(template).encode()
    path = tmp_path / f"{name}.json"
    path.write_bytes(body)
    return StackSpec(name=name, layer=name.rsplit("-", 1)[-1], region="eu-west-1", template_path=path,
                     template_key=f"templates/{name}.json", sha256=hashlib.sha256(body).hexdigest(), bootstrap=False,
                     parameters=extra.pop("parameters", {}), no_echo_parameters=frozenset(), exports=(), imports=(),
                     depends_on=(), capabilities=(), stateful_resources={}, serves_traffic=False, rollback_alarms=(),
                     timeout_minutes=30, **extra)


def plan_from(tmp_path: Path, description: dict[str, Any], previous: dict[str, Any] | None = None,
              new: dict[str, Any] | None = None) -> StackPlan:
    spec = spec_for(tmp_path, description["StackName"], new or {"Resources": {}})
    change_set = ChangeSet(description["ChangeSetId"], description["StackId"], "UPDATE", description["Changes"])
    deployed = {"StackName": spec.name, "StackStatus": "UPDATE_COMPLETE", "Parameters": []}
    return StackPlan(spec, Action.UPDATE, deployed, change_set, parameters={}, previous_template=previous or {})


def document_of(*plans: StackPlan) -> dict[str, Any]:
    return review_document("staging", PROVENANCE, list(plans))


def test_a_tag_only_change_of_five_security_groups_raises_no_security_group_warning(tmp_path):
    document = document_of(plan_from(tmp_path, fixture("describe_tags_only.json")))
    entry = document["stacks"][0]
    assert entry["security_group_changes"] == []
    assert document["summary"]["security_group_changes"] == 0
    text = render_text(document)
    assert "Security group:" not in text
    assert text.count("AWS::EC2::SecurityGroup [tags only]") == 5


def test_a_policy_change_names_the_property_and_shows_the_statements_removed_and_added(tmp_path):
    entry = document_of(plan_from(tmp_path, fixture("describe_policy_change.json")))["stacks"][0]
    role, key = entry["iam_changes"]
    assert (role["logical_id"], role["property"], role["source"]) == ("PaymentApiRole", "Policies", "change set")
    assert role["changes"] == ["+ payments: Allow dynamodb:PutItem, dynamodb:UpdateItem on "
                               "arn:aws:dynamodb:eu-west-1:123456789012:table/payments-staging-payments [WritePayments]"]
    assert (key["logical_id"], key["property"]) == ("LogsKey", "KeyPolicy")
    assert key["changes"] == [
        "+ Allow kms:Encrypt, kms:Decrypt for Service logs.eu-west-1.amazonaws.com on * if "
        "ArnLike kms:EncryptionContext:aws:logs:arn arn:aws:logs:eu-west-1:123456789012:* [Logs]"]
    # the function's memory is not an IAM change; the role's tag change adds nothing to its warning
    assert [w["logical_id"] for w in entry["iam_changes"]] == ["PaymentApiRole", "LogsKey"]


def test_an_ingress_change_shows_rules_as_port_and_cidr_pairs(tmp_path):
    rule = {"Type": "AWS::EC2::SecurityGroupIngress", "Properties": {
        "GroupId": {"Ref": "DatabaseSecurityGroup"}, "IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432,
        "SourceSecurityGroupId": {"Ref": "AppSecurityGroup"}}}
    previous = {"Resources": {"DatabaseFromApp": rule}}
    entry = document_of(plan_from(tmp_path, fixture("describe_ingress_change.json"), previous, previous))["stacks"][0]
    group, standalone = entry["security_group_changes"]
    assert group["property"] == "SecurityGroupIngress" and group["source"] == "change set"
    assert group["changes"] == ["- tcp 80 from 0.0.0.0/0 (redirect to HTTPS)",
                                "+ tcp 8443 from 10.1.0.0/16 (admin from the VPC)"]
    assert standalone["property"] == "FromPort, ToPort"
    assert standalone["changes"] == ["- tcp 5432 from Ref(AppSecurityGroup) into Ref(DatabaseSecurityGroup)",
                                     "+ tcp 5433 from Ref(AppSecurityGroup) into Ref(DatabaseSecurityGroup)"]


def test_truncated_or_per_leaf_values_fall_back_to_the_templates(tmp_path):
    templates = fixture("templates_truncated.json")
    entry = document_of(plan_from(tmp_path, fixture("describe_truncated.json"),
                                  templates["previous"], templates["new"]))["stacks"][0]
    [role], [group] = entry["iam_changes"], entry["security_group_changes"]
    assert role["source"] == group["source"] == "templates"
    assert "truncated" in role["note"]
    assert role["changes"] == ["+ payments: Allow dynamodb:PutItem, dynamodb:UpdateItem on "
                               "import(payments-staging-data-PaymentsTableArn) [WritePayments]"]
    assert group["changes"] == ["- tcp 8080 from import(payments-staging-network-AlbSecurityGroupId)",
                                "+ tcp 8443 from import(payments-staging-network-AlbSecurityGroupId)"]
    text = " ".join(render_text(document_of(plan_from(tmp_path, fixture("describe_truncated.json"),
                                                      templates["previous"], templates["new"]))).split())
    assert "Policies (from the templates; CloudFormation truncated the value: diff of the templates)" in text
    assert "SecurityGroupIngress (from the templates; the change set gives no whole value: diff of the templates)" in text


def test_a_stack_without_a_change_set_lists_the_roles_and_rules_its_template_adds(tmp_path):
    spec = spec_for(tmp_path, "payments-staging-compute", fixture("template_deferred.json"))
    plan = StackPlan(spec, Action.DEFERRED, None, note="change set created once payments-staging-network is deployed")
    document = document_of(plan)
    entry = document["stacks"][0]
    assert [w["logical_id"] for w in entry["iam_changes"]] == ["ApiRole", "WorkerRole"]
    assert len(entry["security_group_changes"]) == 10
    assert {w["source"] for w in entry["iam_changes"] + entry["security_group_changes"]} == {"template"}
    assert entry["security_group_changes"][0]["changes"] == [
        "+ tcp 443 from 10.1.0.0/16 into import(payments-staging-network-AppSecurityGroupId)"]
    assert document["summary"]["iam_changes"] == 2 and document["summary"]["security_group_changes"] == 10
    text = render_text(document)
    assert "IAM/policy: Add ApiRole AWS::IAM::Role (from the template)" in text
    assert "+ queue: Allow sqs:SendMessage on import(payments-staging-messaging-PaymentQueueArn)" in text


def test_the_header_says_within_five_lines_where_what_and_how_much(tmp_path):
    plans = [plan_from(tmp_path, fixture("describe_policy_change.json")),
             plan_from(tmp_path, fixture("describe_ingress_change.json"))]
    head = render_text(document_of(*plans)).strip().splitlines()[:5]
    assert head == [
        "=== Review: staging (account 123456789012, region eu-west-1) ===",
        "commit 0123456789ab, manifest sha256 abababababab, reviewed 2026-11-27T10:00:00Z",
        "stacks: 0 create, 2 update, 0 skip, 0 deferred, 0 blocked",
        "resources: 0 added, 5 modified, 0 removed, 1 replaced",
        "1 stateful touched (payments-staging-compute/LogsKey); 2 IAM change(s); 2 security-group change(s)",
    ]


def test_deferred_notes_and_added_parameters_are_readable_at_100_columns(tmp_path):
    exports = [f"payments-staging-network-{name}{i}" for i in range(21) for name in ["SubnetId"]]
    spec = spec_for(tmp_path, "payments-staging-data", {"Resources": {}}, parameters={"Release": "2026.11.2"})
    note = "change set created once payments-staging-network is deployed; 21 import(s) not exported yet:\n" \
           f"  payments-staging-network: {', '.join(e.removeprefix('payments-staging-network-') for e in exports)}"
    deferred = StackPlan(spec, Action.DEFERRED, {"StackStatus": "UPDATE_COMPLETE"}, note=note, parameters={})
    updated = plan_from(tmp_path, fixture("describe_policy_change.json"))
    updated.parameters = {"Release": "2026.11.2"}
    text = render_text(document_of(deferred, updated))
    long_lines = [line for line in text.splitlines() if len(line) > WIDTH]
    assert all(line.startswith("https://") for line in long_lines)  # console links stay whole
    assert "None" not in text
    assert "parameter Release: added, '2026.11.2'" in text


def test_review_md_has_the_header_a_collapsible_section_per_stack_and_the_console_links(tmp_path):
    unchanged = StackPlan(spec_for(tmp_path, "payments-staging-artifacts", {"Resources": {}}), Action.UNCHANGED,
                          {"StackStatus": "UPDATE_COMPLETE"}, note="template, parameters and tags as deployed")
    document = document_of(plan_from(tmp_path, fixture("describe_policy_change.json")),
                           plan_from(tmp_path, fixture("describe_tags_only.json")), unchanged)
    markdown = render_markdown(document)
    assert markdown.startswith("### Review: staging (account 123456789012, region eu-west-1)\n")
    assert markdown.count("<details>") == 2  # a stack with nothing to run is one line, not a section
    assert "Nothing to run: payments-staging-artifacts (unchanged)" in markdown
    assert "```diff\n+ payments: Allow dynamodb:PutItem" in markdown
    assert markdown.count("[Open the change set in the console](https://eu-west-1.console.aws.amazon.com/") == 2


def test_review_md_stays_small_enough_for_a_pull_request_comment(tmp_path):
    description = fixture("describe_tags_only.json")
    description["Changes"] = description["Changes"] * 400
    markdown = render_markdown(document_of(*[plan_from(tmp_path, description) for _ in range(10)]))
    assert len(markdown) <= MARKDOWN_LIMIT
    assert markdown.count("[Open the change set in the console]") == 10


@pytest.mark.parametrize(("environ", "git", "expected"), [
    ({"GITHUB_SHA": "feedface"}, "cafe", "feedface"),  # CI's checkout wins
    ({}, "cafe", "cafe"),
    ({}, None, "unknown"),  # no git, not a repository: said, never a crash
])
def test_the_commit_comes_from_ci_then_git_else_unknown(tmp_path, environ, git, expected):
    assert current_commit(tmp_path, environ, git=lambda directory: git) == expected


def test_execute_refuses_a_review_of_another_commit_build_account_or_region():
    reviewed = PROVENANCE.as_dict()
    now = Provenance(commit="1" * 40, manifest_sha256="cd" * 32, account="123456789012", region="eu-west-1",
                     reviewed_at="2026-11-27T11:00:00Z")
    assert differences(reviewed, now) == [
        f"commit was {PROVENANCE.commit} at review, is {'1' * 40} now",
        f"manifest_sha256 was {'ab' * 32} at review, is {'cd' * 32} now",
    ]
    assert differences(reviewed, PROVENANCE) == []


# ---- the same rules through deploy.py plan / execute against the CloudFormation fake ------------
def test_plan_prints_the_header_and_writes_review_json_and_review_md(env, world, monkeypatch):
    from synthetic_env import make_context, run_deploy

    monkeypatch.setenv("GITHUB_SHA", "0123456789abcdef0123456789abcdef01234567")
    context = make_context(world)
    context.clock.now = lambda: datetime.datetime(2026, 11, 27, 10, 0, tzinfo=datetime.UTC)
    code, text = run_deploy(env, world, "plan", context=context)
    assert code == 0, text
    build = env.build_dir / "staging"
    manifest_sha = hashlib.sha256((build / "manifest.json").read_bytes()).hexdigest()
    header = text[text.index("=== Review"):].splitlines()[:5]
    assert header[:2] == ["=== Review: staging (account 123456789012, region eu-west-1) ===",
                          f"commit 0123456789ab, manifest sha256 {manifest_sha[:12]}, reviewed 2026-11-27T10:00:00Z"]
    assert header[2].startswith("stacks: 1 create, 0 update, 0 skip, 9 deferred, 0 blocked")
    review = json.loads((build / "review.json").read_text())
    assert review["provenance"] == {"account": "123456789012", "commit": "0123456789abcdef0123456789abcdef01234567",
                                    "manifest_sha256": manifest_sha, "region": "eu-west-1",
                                    "reviewed_at": "2026-11-27T10:00:00Z"}
    assert (build / "review.md").read_text().startswith("### Review: staging (account 123456789012")
    described = world.calls_of("describe_change_set")
    assert described and all(call.get("IncludePropertyValues") for call in described)


def test_execute_refuses_a_plan_reviewed_at_another_commit(env, world, monkeypatch):
    from synthetic_env import run_deploy

    assert run_deploy(env, world, "deploy", "--yes")[0] == 0
    env.layers["api"].resources["Extra"] = {"Type": "AWS::SNS::Topic", "Properties": {}}
    env.write()
    monkeypatch.setenv("GITHUB_SHA", "a" * 40)
    assert run_deploy(env, world, "plan")[0] == 0
    monkeypatch.setenv("GITHUB_SHA", "b" * 40)
    world.calls.clear()
    code, text = run_deploy(env, world, "execute")
    assert code == 1
    assert f"REFUSED: commit was {'a' * 40} at review, is {'b' * 40} now" in text
    assert world.calls_of("execute_change_set") == []
    monkeypatch.setenv("GITHUB_SHA", "a" * 40)
    code, text = run_deploy(env, world, "execute")
    assert code == 0, text

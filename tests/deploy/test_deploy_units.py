"""Unit tests of the scheduler, manifest checks, guards and review helpers."""
from __future__ import annotations

import json
import threading

import pytest

from deploylib.guards import exports_at_risk, references, stateful_guard
from deploylib.manifest import ManifestError, load_manifest
from deploylib.review import console_url, parameter_changes
from deploylib.scheduler import Outcome, critical_path_seconds, reverse_graph, run_graph

WAIT = 30  # seconds: only ever reached if the scheduler is broken (then the test fails, never hangs)


def test_a_stack_starts_when_its_own_dependencies_are_done_not_its_level():
    # slow and fast are both level 1; after_fast (level 2) must start while slow still runs:
    # slow finishes only once after_fast has started
    graph = {"root": set(), "slow": {"root"}, "fast": {"root"}, "after_fast": {"fast"}}
    after_fast_started = threading.Event()

    def work(name):
        if name == "after_fast":
            after_fast_started.set()
        if name == "slow" and not after_fast_started.wait(WAIT):
            return Outcome(False, "failed", "after_fast never started while slow was running")
        return Outcome(True, "deployed")

    result = run_graph(graph, work, max_parallel=4)
    assert result.ok, result.outcomes


def test_concurrency_is_bounded():
    graph = {f"s{i}": set() for i in range(8)}
    running, peak, lock = [0], [0], threading.Lock()
    full = threading.Event()

    def work(name):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
            if running[0] == 3:
                full.set()
        full.wait(WAIT)  # the first three hold until all three run at once
        with lock:
            running[0] -= 1
        return Outcome(True, "deployed")

    assert run_graph(graph, work, max_parallel=3).ok
    assert peak[0] == 3


def test_failure_stops_new_starts_and_lets_running_finish():
    graph = {"a": set(), "b": set(), "c": {"a"}, "d": {"b"}}
    failure_recorded = threading.Event()

    def work(name):
        if name == "a":
            return Outcome(False, "failed", "boom")
        failure_recorded.wait(WAIT)  # b is still running when the runner learns of a's failure
        return Outcome(True, "deployed")

    def heard(name, outcome):
        if not outcome.ok:
            failure_recorded.set()

    result = run_graph(graph, work, max_parallel=2, on_outcome=heard)
    assert not result.ok
    assert result.outcomes["b"].ok  # was running, finished
    assert result.not_started == ["c", "d"]


def test_unexpected_exception_is_a_failure_not_a_hang():
    result = run_graph({"a": set()}, lambda name: 1 / 0, max_parallel=1)
    assert result.outcomes["a"].label == "failed" and "ZeroDivisionError" in result.outcomes["a"].detail


def test_critical_path_and_reverse_graph():
    graph = {"a": set(), "b": {"a"}, "c": {"a"}, "d": {"b", "c"}}
    assert critical_path_seconds(graph, {"a": 1, "b": 5, "c": 2, "d": 1}) == 7
    assert reverse_graph(graph) == {"a": {"b", "c"}, "b": {"d"}, "c": {"d"}, "d": set()}


def test_manifest_cycle_and_unknown_dependency_are_rejected(env):
    path = env.build_dir / "staging" / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["stacks"][1]["depends_on"] = [manifest["stacks"][-1]["name"]]
    path.write_text(json.dumps(manifest))
    with pytest.raises(ManifestError, match="dependency cycle"):
        load_manifest(env.build_dir, "staging")
    manifest["stacks"][1]["depends_on"] = ["payments-staging-nothing"]
    path.write_text(json.dumps(manifest))
    with pytest.raises(ManifestError, match="unknown stack payments-staging-nothing"):
        load_manifest(env.build_dir, "staging")


def test_environment_mismatch_is_rejected(env):
    (env.build_dir / "dev").mkdir()
    (env.build_dir / "staging" / "manifest.json").rename(env.build_dir / "dev" / "manifest.json")
    with pytest.raises(ManifestError, match="written for environment 'staging', not 'dev'"):
        load_manifest(env.build_dir, "dev")


def _spec(env, layer="data"):
    return load_manifest(env.build_dir, "staging").by_name[env.stack_name(layer)]


def test_stateful_guard_conditional_and_removal(env):
    spec = _spec(env)
    changes = [
        {"ResourceChange": {"Action": "Modify", "LogicalResourceId": "Db", "ResourceType": "AWS::RDS::DBCluster",
                            "Replacement": "Conditional", "Details": [
                                {"Target": {"Attribute": "Properties", "Name": "KmsKeyId", "RequiresRecreation": "Conditionally"}}]}},
        {"ResourceChange": {"Action": "Remove", "LogicalResourceId": "Logs", "ResourceType": "AWS::Logs::LogGroup"}},
        {"ResourceChange": {"Action": "Modify", "LogicalResourceId": "Fn", "ResourceType": "AWS::Lambda::Function",
                            "Replacement": "True", "Details": []}},
    ]
    findings = stateful_guard(spec, changes, allowed=set())
    assert [f.logical_id for f in findings] == ["Db", "Logs"]
    assert "may be REPLACED" in findings[0].message and "KmsKeyId" in findings[0].message
    assert "REMOVED" in findings[1].message
    assert [f.logical_id for f in stateful_guard(spec, changes, allowed={"Db"})] == ["Logs"]


def test_export_at_risk_detection(env):
    spec = _spec(env, "network")
    deployed = {"Outputs": [{"OutputKey": "TopicArn", "OutputValue": "x", "ExportName": env.export_name("network")}]}
    template = {"Outputs": {"TopicArn": {"Value": {"Ref": "Topic"}}}}
    replaced = [{"ResourceChange": {"Action": "Modify", "LogicalResourceId": "Topic", "Replacement": "True"}}]
    assert exports_at_risk(spec, deployed, template, template, [], set()) == {}
    assert "refers to Topic" in exports_at_risk(spec, deployed, template, template, replaced, set())[env.export_name("network")]
    assert references({"Fn::Sub": ["${A}-${B.Arn}", {"C": {"Ref": "D"}}]}) == {"A", "B", "D"}


def test_no_echo_parameters_are_masked_and_console_url_is_encoded(env):
    spec = _spec(env)
    object.__setattr__(spec, "parameters", {"Password": "hunter2", "Size": "2"})
    object.__setattr__(spec, "no_echo_parameters", frozenset({"Password"}))
    deployed = {"Parameters": [{"ParameterKey": "Password", "ParameterValue": "****"},
                               {"ParameterKey": "Size", "ParameterValue": "1"}]}
    rows = parameter_changes(spec, deployed)
    assert rows == [{"name": "Password", "old": "****", "new": "****", "no_echo": True},
                    {"name": "Size", "old": "1", "new": "2", "no_echo": False}]
    url = console_url("eu-west-1", "arn:aws:cloudformation:eu-west-1:1:stack/a/b", "arn:x:changeSet/c/d")
    assert "stackId=arn%3Aaws%3Acloudformation%3Aeu-west-1%3A1%3Astack%2Fa%2Fb&changeSetId=arn%3Ax%3AchangeSet%2Fc%2Fd" in url


# ---- emulator gaps: degrade only where the endpoint is an emulator --------------------------
def _stubbed_cfn(endpoint_url=None):
    import boto3
    from botocore.stub import Stubber

    client = boto3.client("cloudformation", region_name="eu-west-1", endpoint_url=endpoint_url,
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    return client, Stubber(client)


def _context_for(client):
    from deploylib.aws import Backoff, Clock, Context

    return Context(client_factory=lambda service, region: client, clock=Clock(sleep=lambda s: None),
                   backoff=Backoff(base_seconds=0, cap_seconds=0, max_attempts=2))


def test_emulator_gap_is_recognised_only_for_emulators():
    from botocore.exceptions import ClientError
    from botocore.parsers import ResponseParserError

    from deploylib.aws import emulator_gap

    html_500 = ResponseParserError("Unable to parse response (syntax error: line 1, column 0), invalid XML received")
    server_error = ClientError({"Error": {"Code": "InternalFailure", "Message": "boom"},
                                "ResponseMetadata": {"HTTPStatusCode": 500}}, "ListImports")
    assert "not implemented by the emulator" in emulator_gap(None, NotImplementedError("list_imports"))
    assert "http://127.0.0.1:5000" in emulator_gap("http://127.0.0.1:5000", html_500)
    assert "HTTP 500" in emulator_gap("http://127.0.0.1:5000", server_error)
    # real CloudFormation (or the in-memory fake standing for it): an error stays an error
    for endpoint in ("https://cloudformation.eu-west-1.amazonaws.com", "https://cloudformation.cn-north-1.amazonaws.com.cn",
                     "https://cloudformation.eu-west-1.api.aws", None):
        assert emulator_gap(endpoint, html_500) is None
        assert emulator_gap(endpoint, server_error) is None
    denied = ClientError({"Error": {"Code": "AccessDenied", "Message": "no"},
                          "ResponseMetadata": {"HTTPStatusCode": 403}}, "ListImports")
    assert emulator_gap("http://127.0.0.1:5000", denied) is None


@pytest.mark.parametrize("code,status", [("InternalFailure", 500), ("AccessDenied", 403)])
def test_export_guard_fails_closed_when_list_imports_fails_on_aws(env, code, status):
    from deploylib.guards import export_guard

    client, stubber = _stubbed_cfn()
    stubber.add_client_error("list_imports", service_error_code=code, service_message="it failed",
                             http_status_code=status)
    spec = load_manifest(env.build_dir, "staging").by_name["payments-staging-network"]
    warnings = []
    with stubber:
        findings = export_guard(_context_for(client), spec, {"payments-staging-network-TopicArn": "removed"},
                                warnings.append)
    assert warnings == []
    assert len(findings) == 1
    assert "ListImports failed (it failed)" in findings[0].message
    assert "aws cloudformation list-imports --region eu-west-1 --export-name payments-staging-network-TopicArn" \
        in findings[0].message


def test_export_guard_warns_when_an_emulator_lacks_list_imports(env):
    from deploylib.guards import export_guard

    client, stubber = _stubbed_cfn("http://127.0.0.1:5000")
    stubber.add_client_error("list_imports", service_error_code="InternalFailure", http_status_code=500)
    spec = load_manifest(env.build_dir, "staging").by_name["payments-staging-network"]
    warnings = []
    with stubber:
        findings = export_guard(_context_for(client), spec, {"payments-staging-network-TopicArn": "removed"},
                                warnings.append)
    assert findings == []
    assert warnings and "ListImports not implemented by this endpoint" in warnings[0]


def test_termination_protection_errors_from_aws_are_not_swallowed(env):
    from botocore.exceptions import ClientError

    from deploylib.output import Printer
    from deploylib.protection import set_termination_protection

    spec = load_manifest(env.build_dir, "staging").by_name["payments-staging-network"]
    client, stubber = _stubbed_cfn()
    stubber.add_client_error("update_termination_protection", service_error_code="InternalFailure",
                             http_status_code=500)
    with stubber, pytest.raises(ClientError):
        set_termination_protection(_context_for(client), Printer(), spec, True)


# --- plans without a change set (plan.json edited by hand, a stack gone meanwhile) ---------------

def _executor_for(env, client):
    from deploylib.executor import Executor
    from deploylib.output import Printer
    from deploylib.planner import Planner

    return Executor(Planner(_context_for(client), load_manifest(env.build_dir, "staging"), Printer()))


def test_a_create_plan_without_a_change_set_asks_for_a_new_plan(env):
    from deploylib.plans import Action, Label, StackPlan

    client, stubber = _stubbed_cfn()  # no call expected: nothing reviewed, nothing to run
    with stubber:
        outcome = _executor_for(env, client).execute_stack(StackPlan(_spec(env), Action.CREATE))
    assert (outcome.ok, outcome.label) == (False, Label.NEEDS_PLAN)
    assert outcome.detail == "planned to create but holds no change set"


def test_a_plan_without_a_change_set_has_nothing_to_guard_or_relax(env):
    from deploylib.plans import Action, StackPlan
    from deploylib.protection import allowed_stateful_changes

    client, stubber = _stubbed_cfn()
    plan = StackPlan(_spec(env), Action.UNCHANGED)
    with stubber:
        assert _executor_for(env, client).planner.guard(plan) == []
    assert allowed_stateful_changes(plan, {"Table"}) == set()


def test_switching_the_lifecycle_of_a_stack_that_is_gone_fails_with_the_reason(env):
    import dataclasses

    from deploylib.plans import Label

    client, stubber = _stubbed_cfn()
    stubber.add_client_error("describe_stacks", service_error_code="ValidationError",
                             service_message="Stack with id payments-staging-data does not exist")
    spec = dataclasses.replace(_spec(env), lifecycle_parameter="StackLifecycle")
    with stubber:
        outcome = _executor_for(env, client).switch_lifecycle(spec, "creating")
    assert (outcome.ok, outcome.label) == (False, Label.FAILED)
    assert outcome.detail == "cannot switch StackLifecycle to creating: the stack no longer exists"


def test_a_stack_without_a_lifecycle_parameter_has_nothing_to_switch(env):
    import dataclasses

    from deploylib.plans import Label

    client, stubber = _stubbed_cfn()  # no call expected
    spec = dataclasses.replace(_spec(env), lifecycle_parameter=None)
    with stubber:
        outcome = _executor_for(env, client).switch_lifecycle(spec, "creating")
    assert (outcome.ok, outcome.label) == (True, Label.UNCHANGED)


def test_an_administered_stack_refused_to_a_pipeline_role_says_who_deploys_it(env):
    import dataclasses

    from botocore.exceptions import ClientError

    from deploylib.planner import ADMINISTERED_NOTE, failure_note

    denied = ClientError({"Error": {"Code": "AccessDenied", "Message": "not authorized to perform: "
                                    "cloudformation:CreateChangeSet"}}, "CreateChangeSet")
    administered = dataclasses.replace(_spec(env, "artifacts"), administered=True)
    assert failure_note(administered, denied).splitlines() == [
        "not authorized to perform: cloudformation:CreateChangeSet", ADMINISTERED_NOTE]
    assert failure_note(dataclasses.replace(administered, administered=False), denied) == (
        "not authorized to perform: cloudformation:CreateChangeSet")
    throttled = ClientError({"Error": {"Code": "Throttling", "Message": "Rate exceeded"}}, "CreateChangeSet")
    assert failure_note(administered, throttled) == "Rate exceeded"

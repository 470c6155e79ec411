"""workflow layer: the state machine built from functions/workflow.asl.json."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from templates_src import workflow
from templates_src.compute_functions import reserved_concurrency
from templates_src.config import load_environment
from templates_src.function_catalog import FUNCTIONS_DIR, load_functions

from .helpers import assert_data_policy, write_function

ENVIRONMENTS = ("dev", "staging", "prod")
REAL_DEFINITION = FUNCTIONS_DIR / workflow.DEFINITION_FILE
REAL_BATCH_DEFINITION = FUNCTIONS_DIR / workflow.BATCH_DEFINITION_FILE


def called_functions(definition: dict) -> list[str]:
    return [name for name in workflow.placeholders(definition) if name not in workflow.TOPICS]


@pytest.fixture
def functions_dir(tmp_path: Path) -> Path:
    """The repository's definition with a declaration (stepfunctions trigger) per function it calls."""
    directory = tmp_path / "functions"
    directory.mkdir()
    for source in (REAL_DEFINITION, REAL_BATCH_DEFINITION):
        shutil.copy(source, directory / source.name)
        for name in called_functions(workflow.load_definition(source)):
            write_function(directory, name, ["stepfunctions"])
    write_function(directory, "unrelated_worker", ["api"])
    return directory


def build_dict(env: str, functions_dir: Path) -> dict:
    return json.loads(workflow.build(load_environment(env), functions_dir).to_json())


def state_machine(template: dict) -> dict:
    """The payment state machine (the batch machine has tests of its own below)."""
    return template["Resources"]["PaymentStateMachine"]["Properties"]


def role_statements(template: dict) -> dict[str, dict]:
    role = template["Resources"]["StateMachineRole"]
    (policy,) = role["Properties"]["Policies"]
    return {statement["Sid"]: statement for statement in policy["PolicyDocument"]["Statement"]}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_state_machine_is_standard_logged_traced_and_encrypted(env, functions_dir):
    template = build_dict(env, functions_dir)
    properties = state_machine(template)
    assert properties["StateMachineType"] == "STANDARD"
    assert properties["StateMachineName"] == f"payments-{env}-payment-workflow"
    assert properties["LoggingConfiguration"]["Level"] == "ALL"
    assert properties["LoggingConfiguration"]["IncludeExecutionData"] is False
    assert properties["TracingConfiguration"] == {"Enabled": True}
    encryption = properties["EncryptionConfiguration"]
    assert encryption["Type"] == "CUSTOMER_MANAGED_KMS_KEY"
    assert encryption["KmsKeyId"] == {"Fn::ImportValue": f"payments-{env}-security-DataKeyArn"}

    log_group = template["Resources"]["StateMachineLogGroup"]
    assert log_group["Properties"]["KmsKeyId"] == {"Fn::ImportValue": f"payments-{env}-security-LogsKeyArn"}
    assert log_group["Properties"]["RetentionInDays"] == load_environment(env).log_retention_days
    assert_data_policy(log_group, env)
    destination = properties["LoggingConfiguration"]["Destinations"][0]["CloudWatchLogsLogGroup"]["LogGroupArn"]
    assert destination == {"Fn::GetAtt": ["StateMachineLogGroup", "Arn"]}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_placeholder_resolves_to_an_alias_or_the_topic(env, functions_dir):
    properties = state_machine(build_dict(env, functions_dir))
    used = set(workflow.PLACEHOLDER.findall(json.dumps(properties["Definition"])))
    substitutions = properties["DefinitionSubstitutions"]
    assert used == set(substitutions)
    for name in called_functions(workflow.load_definition(REAL_DEFINITION)):
        logical = "".join(part.capitalize() for part in name.split("_"))
        assert substitutions[name] == {"Fn::ImportValue": f"payments-{env}-compute-{logical}AliasArn"}
    assert substitutions["PaymentNotificationsTopicArn"] == {
        "Fn::ImportValue": f"payments-{env}-messaging-PaymentNotificationsTopicArn"
    }
    assert substitutions["Partition"] == {"Ref": "AWS::Partition"}


def test_template_has_no_hard_coded_partition(functions_dir):
    rendered = workflow.build(load_environment("prod"), functions_dir).to_json()
    assert "arn:aws:" not in rendered
    assert "arn:${Partition}:states:::lambda:invoke" in rendered


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_role_is_least_privilege(env, functions_dir):
    template = build_dict(env, functions_dir)
    statements = role_statements(template)
    invoked = statements["InvokePaymentFunctionAliases"]
    expected_aliases = {
        f"payments-{env}-compute-{''.join(p.capitalize() for p in name.split('_'))}AliasArn"
        for name in called_functions(workflow.load_definition(REAL_DEFINITION))
    }
    assert {resource["Fn::ImportValue"] for resource in invoked["Resource"]} == expected_aliases
    assert invoked["Action"] == ["lambda:InvokeFunction"]
    assert f"payments-{env}-compute-UnrelatedWorkerAliasArn" not in json.dumps(template)
    assert statements["PublishPaymentNotifications"]["Action"] == ["sns:Publish"]
    assert statements["PublishPaymentNotifications"]["Resource"] == [
        {"Fn::ImportValue": f"payments-{env}-messaging-PaymentNotificationsTopicArn"}
    ]
    assert sorted(statements["EncryptWithDataKey"]["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey"]
    for sid, statement in statements.items():
        assert all("*" not in action for action in statement["Action"]), sid
        if statement["Resource"] == ["*"]:
            assert sid in {"DeliverExecutionLogs", "WriteTraces"}, f"{sid} uses a * resource"
    trust = template["Resources"]["StateMachineRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]
    assert trust["Principal"] == {"Service": "states.amazonaws.com"}
    assert "aws:SourceAccount" in trust["Condition"]["StringEquals"]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_exports_state_machine_arn_and_name(env, functions_dir):
    outputs = build_dict(env, functions_dir)["Outputs"]
    assert {key: output["Export"]["Name"] for key, output in outputs.items()} == {
        "StateMachineArn": f"payments-{env}-workflow-StateMachineArn",
        "StateMachineName": f"payments-{env}-workflow-StateMachineName",
        "BatchStateMachineArn": f"payments-{env}-workflow-BatchStateMachineArn",
        "BatchStateMachineName": f"payments-{env}-workflow-BatchStateMachineName",
    }


def test_unknown_placeholder_stops_the_build(functions_dir):
    definition_file = functions_dir / workflow.DEFINITION_FILE
    definition = json.loads(definition_file.read_text())
    definition["States"]["Validate"]["Parameters"]["FunctionName"] = "${validaton}"
    definition_file.write_text(json.dumps(definition))
    with pytest.raises(workflow.WorkflowDefinitionError, match=r"\$\{validaton\}") as error:
        workflow.build(load_environment("dev"), functions_dir)
    assert str(definition_file) in str(error.value)


def test_reserved_partition_placeholder_is_refused(functions_dir):
    definition_file = functions_dir / workflow.DEFINITION_FILE
    definition = json.loads(definition_file.read_text())
    definition["Comment"] = "runs in ${Partition}"
    definition_file.write_text(json.dumps(definition))
    with pytest.raises(workflow.WorkflowDefinitionError, match="reserved") as error:
        workflow.build(load_environment("dev"), functions_dir)
    assert str(error.value).count("Partition") == 1


def test_called_function_must_declare_a_stepfunctions_trigger(functions_dir):
    name = called_functions(workflow.load_definition(REAL_DEFINITION))[0]
    shutil.rmtree(functions_dir / name)
    write_function(functions_dir, name, ["api"])
    with pytest.raises(workflow.WorkflowDefinitionError, match=f"{name}.*stepfunctions"):
        workflow.build(load_environment("dev"), functions_dir)


@pytest.mark.parametrize("content, message", [("{not json", "not valid JSON"), ('{"StartAt": "A"}', "States")])
def test_bad_definition_file_is_explained(functions_dir, content, message):
    (functions_dir / workflow.DEFINITION_FILE).write_text(content)
    with pytest.raises(workflow.WorkflowDefinitionError, match=message):
        workflow.build(load_environment("dev"), functions_dir)


def test_missing_definition_file_is_explained(functions_dir):
    (functions_dir / workflow.DEFINITION_FILE).unlink()
    with pytest.raises(workflow.WorkflowDefinitionError, match="not found"):
        workflow.build(load_environment("dev"), functions_dir)


def test_build_is_deterministic(functions_dir):
    config = load_environment("staging")
    assert workflow.build(config, functions_dir).to_json() == workflow.build(config, functions_dir).to_json()


def test_definition_as_written_passes_cfn_lint_state_machine_checks(functions_dir):
    """The template ignores E3601 only because of the partition rewrite; the definition itself
    must still satisfy cfn-lint's Amazon States Language schema."""
    from cfnlint.api import lint

    template = build_dict("dev", functions_dir)
    resource = template["Resources"]["PaymentStateMachine"]
    resource["Properties"]["Definition"] = workflow.load_definition(REAL_DEFINITION)
    resource.pop("Metadata")
    findings = [match for match in lint(json.dumps(template), regions=["eu-west-1"]) if match.rule.id.startswith("E")]
    assert findings == []


@pytest.mark.skipif(
    not any(d.name != "paylib" and (d / "function.yaml").exists() for d in FUNCTIONS_DIR.iterdir() if d.is_dir()),
    reason="functions/ declarations not written yet",
)
@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_repository_functions_build(env):
    """The real declarations agree with the real definition (the build's own input)."""
    template = json.loads(workflow.build(load_environment(env)).to_json())
    declared = {f.name for f in load_functions()}
    called = set(called_functions(workflow.load_definition(REAL_DEFINITION)))
    assert called <= declared
    assert called <= set(state_machine(template)["DefinitionSubstitutions"])


def test_batch_machine_routes_by_size_into_a_distributed_map_with_the_environment_settings(functions_dir):
    config = load_environment("prod")
    template = build_dict("prod", functions_dir)
    definition = template["Resources"]["BatchStateMachine"]["Properties"]["Definition"]
    settings = definition["States"]["Prepare"]["Parameters"]["settings"]
    assert settings == {"distributed_threshold_bytes": config.batch.distributed_threshold_bytes,
                        "batch_rows": config.batch.batch_rows, "max_concurrency": config.batch.max_concurrency}
    route = definition["States"]["Route"]["Choices"][0]
    assert route["NumericGreaterThanPath"] == "$.settings.distributed_threshold_bytes"
    mapped = definition["States"][route["Next"]]
    assert mapped["ItemReader"]["ReaderConfig"] == {"InputType": "CSV", "CSVHeaderLocation": "FIRST_ROW"}
    assert mapped["ItemSelector"]["index.$"] == "$$.Map.Item.Index"
    assert mapped["ItemBatcher"]["MaxItemsPerBatchPath"] == "$.settings.batch_rows"
    assert mapped["MaxConcurrencyPath"] == "$.settings.max_concurrency"
    assert mapped["ItemProcessor"]["ProcessorConfig"] == {"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"}
    assert 0 < mapped["ToleratedFailurePercentage"] < 100
    child = mapped["ItemProcessor"]["States"]["IngestBatch"]
    assert child["Catch"][0]["Next"] == "BatchFailed" and child["Retry"][0]["MaxAttempts"] >= 3
    assert mapped["ResultWriter"]["Resource"].endswith(":states:::s3:putObject")


def test_batch_machine_role_is_least_privilege(functions_dir):
    template = build_dict("staging", functions_dir)
    role = template["Resources"]["BatchStateMachineRole"]
    statements = {s["Sid"]: s for s in role["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]}
    assert statements["StartMapChildExecutions"]["Action"] == ["states:StartExecution"]
    assert "stateMachine:payments-staging-batch-ingestion" in json.dumps(statements["StartMapChildExecutions"]["Resource"])
    assert "execution:payments-staging-batch-ingestion/*" in json.dumps(statements["ManageMapChildExecutions"]["Resource"])
    assert "/results/*" in json.dumps(statements["WriteMapResults"]["Resource"])
    assert "/incoming/*" in json.dumps(statements["ReadUploadedCsv"]["Resource"])
    for statement in statements.values():
        assert all("*" not in action for action in statement["Action"])
    assert "BatchStarterStartExecution" not in template["Resources"]  # no batch_starter declared here
    real = json.loads(workflow.build(load_environment("staging")).to_json())
    starter = real["Resources"]["BatchStarterStartExecution"]["Properties"]
    assert starter["Roles"] == ["payments-staging-batch-starter"]
    assert starter["PolicyDocument"]["Statement"][0]["Action"] == ["states:StartExecution"]


def test_batch_definition_as_written_passes_cfn_lint_state_machine_checks(functions_dir):
    from cfnlint.api import lint

    template = build_dict("dev", functions_dir)
    resource = template["Resources"]["BatchStateMachine"]
    resource["Properties"]["Definition"] = workflow.load_definition(REAL_BATCH_DEFINITION)
    resource.pop("Metadata")
    findings = [match for match in lint(json.dumps(template), regions=["eu-west-1"]) if match.rule.id.startswith("E")]
    assert findings == []


def test_map_batches_run_in_their_own_reserved_function_and_the_other_steps_in_batch_ingestion():
    """The map invokes only the child's alias; the single path and the Report step batch_ingestion's.
    The child reserves batch.reserved_concurrency, which the config keeps at least MaxConcurrency."""
    config = load_environment("prod")
    template = json.loads(workflow.build(config).to_json())
    machine = template["Resources"]["BatchStateMachine"]["Properties"]
    states = machine["Definition"]["States"]
    child = states["IngestInBatches"]["ItemProcessor"]["States"]["IngestBatch"]["Parameters"]["FunctionName"]
    assert child == "${batch_map_ingestion}"
    assert {states[name]["Parameters"]["FunctionName"] for name in ("IngestInOneFunction", "Report")} == {"${batch_ingestion}"}
    assert set(machine["DefinitionSubstitutions"]) == {"batch_ingestion", "batch_map_ingestion", "Partition"}
    invoke = next(s for s in template["Resources"]["BatchStateMachineRole"]["Properties"]["Policies"][0]
                  ["PolicyDocument"]["Statement"] if s["Action"] == ["lambda:InvokeFunction"])
    assert invoke["Resource"] == [{"Fn::ImportValue": f"payments-prod-compute-{name}AliasArn"}
                                  for name in ("BatchIngestion", "BatchMapIngestion")]
    declaration = next(f for f in load_functions() if f.name == "batch_map_ingestion")
    assert reserved_concurrency(config, declaration) == config.batch.reserved_concurrency >= config.batch.max_concurrency
    assert config.batch.reserved_concurrency != config.compute.lambda_reserved_concurrency  # really its own
    # The child's Lambda timeout ends before the map task gives up: a retry never overlaps a running invocation.
    assert declaration.timeout_s < states["IngestInBatches"]["ItemProcessor"]["States"]["IngestBatch"]["TimeoutSeconds"]
    # Nothing of the upload, the reports or the results: the workflow reads the CSV, batch_ingestion reports.
    assert not {"batch_incoming", "batch_reports", "batch_results"} & set(declaration.uses)


def test_the_starter_may_start_the_encrypted_batch_machine_and_use_its_key_only_through_step_functions():
    # The batch machine is encrypted with the data key: StartExecution encrypts the execution's
    # input with it, with the caller's permission (kms:GenerateDataKey), through Step Functions only.
    from tests.policy_eval import ACCOUNT, REGION, Request, allowed

    real = json.loads(workflow.build(load_environment("staging")).to_json())
    policy = real["Resources"]["BatchStarterStartExecution"]["Properties"]["PolicyDocument"]
    data_key = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/data"
    refs = {"payments-staging-security-DataKeyArn": data_key}
    machine = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:payments-staging-batch-ingestion"
    via_states = {"kms:ViaService": f"states.{REGION}.amazonaws.com"}
    assert allowed(policy, Request("states:StartExecution", resource=machine), refs)
    assert allowed(policy, Request("kms:GenerateDataKey", resource=data_key, context=via_states), refs)
    assert not allowed(policy, Request("kms:GenerateDataKey", resource=data_key), refs)
    assert not allowed(policy, Request("kms:GenerateDataKey", resource=data_key,
                                       context={"kms:ViaService": f"s3.{REGION}.amazonaws.com"}), refs)
    assert not allowed(policy, Request("states:StartExecution", resource=machine.replace("batch", "other")), refs)

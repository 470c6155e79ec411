"""workflow layer: the payment state machine (validate, fraud check, decide, process, notify)
and the batch ingestion state machine (one function for small files, a Distributed Map for large).

Design decisions:
- The definition is `functions/workflow.asl.json`, kept beside the functions it calls. It names
  functions as `${<function directory>}` and the notification topic as
  `${PaymentNotificationsTopicArn}`; the template resolves every placeholder through
  DefinitionSubstitutions to the compute layer's alias ARN (safe rollout: the workflow follows
  the alias) and the messaging layer's topic. A placeholder that is neither a declared function
  nor a known topic stops the build (`WorkflowDefinitionError`), so a typo never reaches AWS.
- A function called by the workflow must declare a `stepfunctions` trigger in its function.yaml:
  the declaration stays the one list of how each function is invoked.
- The file spells service integrations as `arn:aws:states:::...` so it runs as-is in local
  tooling; the build rewrites that partition to the stack's own (`${AWS::Partition}` through a
  substitution), so the template works in every partition.
- Logging is level ALL with `IncludeExecutionData: false`: every state transition and error is
  recorded, but inputs and outputs (payment data) never land in CloudWatch Logs. The log group
  lives under `/aws/vendedlogs/` so its resource policy does not grow per state machine.
- Encryption at rest with the security layer's data key (CUSTOMER_MANAGED_KMS_KEY); X-Ray on.
- Every state machine is a row of STATE_MACHINES (definition file, name, exports), built by one
  loop. The batch state machine's `Prepare` state carries the environment's batch settings
  (parameters/<env>.yaml `batch`), written into the definition by the build: the Choice, the
  ItemBatcher and MaxConcurrency read them by path, so the numbers a reviewer sees are in one place.
- The batch machine's role: invoke its function aliases; states:StartExecution on itself (the
  Distributed Map starts its children as executions of this state machine) and
  DescribeExecution/StopExecution on its own executions, both ARNs built from the fixed name (a
  reference would be a cycle); read uploads under incoming/; the ResultWriter's PutObject and
  multipart permissions under results/; the data key. The batch_starter function's role gets
  states:StartExecution on this machine through a separate AWS::IAM::Policy here, so compute
  never imports from workflow.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import awacs.awslambda as lambda_actions
import awacs.kms as kms_actions
import awacs.s3 as s3_actions
import awacs.sns as sns_actions
import awacs.states as states_actions
from awacs.aws import Allow, Condition, Policy, Statement, StringEquals
from troposphere import GetAtt, Join, Ref, Sub, Template, iam, stepfunctions

from . import blocks
from .common import arn, export, ignore_cfn_lint, import_value, new_template, resource_name, tags
from .compute_functions import function_name
from .config import EnvironmentConfig
from .function_catalog import FUNCTIONS_DIR, DeclarationError, FunctionDeclaration, alias_export_key, load_functions

LAYER = "workflow"
DEFINITION_FILE = "workflow.asl.json"
BATCH_DEFINITION_FILE = "batch_ingestion.asl.json"
BATCH_STARTER = "batch_starter"  # the function that starts the batch machine (batch_starter/app.py)
PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")
# Topics the definition may publish to: placeholder -> (layer, export key).
TOPICS = {"PaymentNotificationsTopicArn": ("messaging", "PaymentNotificationsTopicArn")}
# Substitution that carries the stack's partition into service-integration ARNs.
PARTITION_PLACEHOLDER = "Partition"
LOCAL_INTEGRATION_PREFIX = "arn:aws:states:::"
# How long Step Functions reuses a data key: fewer KMS calls, a fresh key every 5 minutes.
KMS_DATA_KEY_REUSE_SECONDS = 300


class WorkflowDefinitionError(DeclarationError):
    """The state machine definition cannot be built; the message names the file and the cause.
    A DeclarationError, so the build reports it as bad input under functions/, not a crash."""


def load_definition(path: Path) -> dict:
    try:
        definition = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise WorkflowDefinitionError(f"{path}: state machine definition not found") from None
    except json.JSONDecodeError as error:
        raise WorkflowDefinitionError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(definition, dict) or not isinstance(definition.get("States"), dict):
        raise WorkflowDefinitionError(f"{path}: must be an Amazon States Language object with States")
    return definition


def placeholders(definition: dict) -> list[str]:
    """Every `${name}` the definition uses, sorted and without repeats."""
    return sorted(set(PLACEHOLDER.findall(json.dumps(definition))))


def with_stack_partition(value):
    """The definition with `arn:aws:states:::` integrations moved to `${Partition}`."""
    if isinstance(value, dict):
        return {key: with_stack_partition(item) for key, item in value.items()}
    if isinstance(value, list):
        return [with_stack_partition(item) for item in value]
    if isinstance(value, str) and value.startswith(LOCAL_INTEGRATION_PREFIX):
        return f"arn:${{{PARTITION_PLACEHOLDER}}}:states:::{value[len(LOCAL_INTEGRATION_PREFIX):]}"
    return value


def resolve_placeholders(
    names: list[str], functions: list[FunctionDeclaration], source: Path
) -> tuple[list[FunctionDeclaration], list[str]]:
    """Split placeholders into called functions and topics; anything else is an error."""
    by_name = {function.name: function for function in functions}
    unknown = [name for name in names if name not in by_name and name not in TOPICS and name != PARTITION_PLACEHOLDER]
    if PARTITION_PLACEHOLDER in names:
        unknown.append(f"{PARTITION_PLACEHOLDER} (reserved for the stack's partition)")
    if unknown:
        raise WorkflowDefinitionError(
            f"{source}: unknown placeholder(s) {', '.join('${' + n + '}' for n in unknown)}; "
            f"use a declared function ({', '.join(sorted(by_name)) or 'none declared'}) "
            f"or a topic ({', '.join(sorted(TOPICS))})"
        )
    called = [by_name[name] for name in names if name in by_name]
    undeclared = [f.name for f in called if "stepfunctions" not in f.trigger_types()]
    if undeclared:
        raise WorkflowDefinitionError(
            f"{source}: calls {', '.join(undeclared)}, whose function.yaml lacks a "
            "'- type: stepfunctions' trigger"
        )
    return called, [name for name in names if name in TOPICS]


@dataclass(frozen=True)
class StateMachineSpec:
    """One state machine: `prefix` of its logical ids and exports (`<prefix>StateMachine`,
    `<prefix>StateMachineRole`, `<prefix>StateMachineArn`...), its definition under functions/,
    its name and its role's name (`payments-<env>-...`)."""

    prefix: str
    definition_file: str
    name: str
    role_name: str
    title: str
    description: str

    @property
    def logical_id(self) -> str:
        return f"{self.prefix}StateMachine"


STATE_MACHINES = (
    StateMachineSpec("Payment", DEFINITION_FILE, "payment-workflow", "workflow-state-machine", "payment workflow",
                     "Payment workflow: invoke its function aliases, publish notifications, log, trace"),
    StateMachineSpec("Batch", BATCH_DEFINITION_FILE, "batch-ingestion", "batch-ingestion-state-machine", "batch ingestion",
                     "Batch ingestion: invoke its function aliases, run its Distributed Map, log, trace"),
)
BATCH_SETTINGS_STATE = "Prepare"
BATCH_SETTINGS = ("distributed_threshold_bytes", "batch_rows", "max_concurrency")


def with_batch_settings(definition: dict, config: EnvironmentConfig, source: Path) -> dict:
    """The batch definition with the environment's settings in its Prepare state."""
    try:
        parameters = definition["States"][BATCH_SETTINGS_STATE]["Parameters"]
        written = set(parameters["settings"])
    except (KeyError, TypeError):
        raise WorkflowDefinitionError(f"{source}: needs a Pass state {BATCH_SETTINGS_STATE} with Parameters.settings") from None
    if written != set(BATCH_SETTINGS):
        raise WorkflowDefinitionError(f"{source}: {BATCH_SETTINGS_STATE}.Parameters.settings must hold exactly "
                                      f"{', '.join(BATCH_SETTINGS)} (has {', '.join(sorted(written))})")
    settings = {name: getattr(config.batch, name) for name in BATCH_SETTINGS}
    states = dict(definition["States"])
    states[BATCH_SETTINGS_STATE] = {**states[BATCH_SETTINGS_STATE], "Parameters": {**parameters, "settings": settings}}
    return {**definition, "States": states}


def _batch_statements(config: EnvironmentConfig, name: str) -> list[Statement]:
    bucket = import_value(config, "storage", "BatchBucketArn")
    return [
        Statement(
            Sid="StartMapChildExecutions",
            Effect=Allow,
            Action=[states_actions.StartExecution],
            Resource=[arn("states", f"stateMachine:{name}")],
        ),
        Statement(
            Sid="ManageMapChildExecutions",
            Effect=Allow,
            Action=[states_actions.DescribeExecution, states_actions.StopExecution],
            Resource=[arn("states", f"execution:{name}/*")],
        ),
        Statement(
            Sid="ReadUploadedCsv",
            Effect=Allow,
            Action=[s3_actions.GetObject, s3_actions.GetObjectVersion],
            Resource=[Join("", [bucket, "/incoming/*"])],
        ),
        Statement(
            Sid="WriteMapResults",
            Effect=Allow,
            Action=[s3_actions.PutObject, s3_actions.ListMultipartUploadParts, s3_actions.AbortMultipartUpload],
            Resource=[Join("", [bucket, "/results/*"])],
        ),
    ]


def _role(template: Template, config: EnvironmentConfig, spec: StateMachineSpec, called, topic_keys) -> iam.Role:
    state_machine_name = resource_name(config, spec.name)
    data_key_arn = import_value(config, "security", "DataKeyArn")
    statements = [
        Statement(
            Sid="EncryptWithDataKey",
            Effect=Allow,
            # The topic, the batch bucket and the execution data are encrypted with the data key.
            Action=[kms_actions.Decrypt, kms_actions.GenerateDataKey],
            Resource=[data_key_arn],
        ),
        *blocks.vended_logs_statements(),
    ]
    if spec.definition_file == BATCH_DEFINITION_FILE:
        statements[:0] = _batch_statements(config, state_machine_name)
    if topic_keys:
        statements.insert(
            0,
            Statement(
                Sid="PublishPaymentNotifications",
                Effect=Allow,
                Action=[sns_actions.Publish],
                Resource=[import_value(config, *TOPICS[key]) for key in topic_keys],
            ),
        )
    if called:
        statements.insert(
            0,
            Statement(
                Sid="InvokePaymentFunctionAliases",
                Effect=Allow,
                Action=[lambda_actions.InvokeFunction],
                Resource=[import_value(config, "compute", alias_export_key(f.logical_name)) for f in called],
            ),
        )
    trust = blocks.service_trust("states.amazonaws.com", arn("states", f"stateMachine:{state_machine_name}"))
    return template.add_resource(
        iam.Role(
            # The payment machine's ids predate the second machine: renaming them would replace them.
            "StateMachineRole" if spec.prefix == "Payment" else f"{spec.prefix}StateMachineRole",
            RoleName=resource_name(config, spec.role_name),
            Description=spec.description,
            AssumeRolePolicyDocument=trust,
            Policies=[iam.Policy(PolicyName=spec.name, PolicyDocument=Policy(Version="2012-10-17", Statement=statements))],
            Tags=tags(config),
        )
    )


def _substitutions(config: EnvironmentConfig, called, topic_keys) -> dict:
    values = {function.name: import_value(config, "compute", alias_export_key(function.logical_name)) for function in called}
    values.update({key: import_value(config, *TOPICS[key]) for key in topic_keys})
    values[PARTITION_PLACEHOLDER] = Ref("AWS::Partition")
    return values


def _state_machine(template: Template, config: EnvironmentConfig, spec: StateMachineSpec, functions_dir: Path,
                   functions: list[FunctionDeclaration]) -> stepfunctions.StateMachine:
    source = functions_dir / spec.definition_file
    definition = load_definition(source)
    if spec.definition_file == BATCH_DEFINITION_FILE:
        definition = with_batch_settings(definition, config, source)
    called, topic_keys = resolve_placeholders(placeholders(definition), functions, source)
    state_machine_name = resource_name(config, spec.name)
    log_group = blocks.log_group(
        template,
        config,
        "StateMachineLogGroup" if spec.prefix == "Payment" else f"{spec.prefix}StateMachineLogGroup",
        f"/aws/vendedlogs/states/{state_machine_name}",
        import_value(config, "security", "LogsKeyArn"),
    )
    role = _role(template, config, spec, called, topic_keys)
    state_machine = template.add_resource(
        stepfunctions.StateMachine(
            spec.logical_id,
            StateMachineName=state_machine_name,
            StateMachineType="STANDARD",
            RoleArn=GetAtt(role, "Arn"),
            Definition=with_stack_partition(definition),
            DefinitionSubstitutions=_substitutions(config, called, topic_keys),
            LoggingConfiguration=stepfunctions.LoggingConfiguration(
                Level="ALL",
                # Inputs/outputs carry payment data: PCI scope must not extend to the logs.
                IncludeExecutionData=False,
                Destinations=[
                    stepfunctions.LogDestination(
                        CloudWatchLogsLogGroup=stepfunctions.CloudWatchLogsLogGroup(LogGroupArn=GetAtt(log_group, "Arn"))
                    )
                ],
            ),
            TracingConfiguration=stepfunctions.TracingConfiguration(Enabled=True),
            EncryptionConfiguration=stepfunctions.EncryptionConfiguration(
                Type="CUSTOMER_MANAGED_KMS_KEY",
                KmsKeyId=import_value(config, "security", "DataKeyArn"),
                KmsDataKeyReusePeriodSeconds=KMS_DATA_KEY_REUSE_SECONDS,
            ),
            Tags=tags(config, state_machine_name),
        )
    )
    ignore_cfn_lint(
        state_machine,
        "E3601",
        "its ASL schema accepts only the literal aws partition in ARNs; tests lint the definition as written",
    )
    return state_machine


def _allow_starter(template: Template, config: EnvironmentConfig, functions: list[FunctionDeclaration], name: str) -> None:
    """states:StartExecution on the batch machine for the batch_starter function's role (named
    after the function by the compute layer), from here: compute cannot import this layer; and
    the data key through Step Functions, which encrypts the execution's input with it."""
    starter = next((f for f in functions if f.name == BATCH_STARTER), None)
    if starter is None:
        return
    template.add_resource(
        iam.PolicyType(
            "BatchStarterStartExecution",
            PolicyName="start-batch-ingestion",
            Roles=[function_name(config, starter)],
            PolicyDocument=Policy(
                Version="2012-10-17",
                Statement=[
                    Statement(Sid="StartBatchIngestion", Effect=Allow, Action=[states_actions.StartExecution],
                              Resource=[arn("states", f"stateMachine:{name}")]),
                    # The machine is encrypted with the data key: StartExecution encrypts the input with
                    # the caller's permission (README, what could not be verified offline).
                    Statement(Sid="EncryptExecutionInput", Effect=Allow,
                              Action=[kms_actions.GenerateDataKey, kms_actions.Decrypt],
                              Resource=[import_value(config, "security", "DataKeyArn")],
                              Condition=Condition(StringEquals(
                                  {"kms:ViaService": Sub("states.${AWS::Region}.amazonaws.com")}))),
                ],
            ),
        )
    )


def build(config: EnvironmentConfig, functions_dir: Path = FUNCTIONS_DIR) -> Template:
    functions = load_functions(functions_dir)
    template = new_template(config, LAYER, "payment workflow state machine (Step Functions)")
    for spec in STATE_MACHINES:
        state_machine = _state_machine(template, config, spec, functions_dir, functions)
        # The payment machine's exports predate the second machine (other stacks may import them).
        key = "StateMachine" if spec.prefix == "Payment" else spec.logical_id
        export(template, config, LAYER, f"{key}Arn", Ref(state_machine), f"ARN of the {spec.title} state machine")
        export(template, config, LAYER, f"{key}Name", GetAtt(state_machine, "Name"), f"Name of the {spec.title} state machine")
    _allow_starter(template, config, functions, resource_name(config, STATE_MACHINES[1].name))
    return template

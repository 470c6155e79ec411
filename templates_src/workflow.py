"""workflow layer: the payment state machine (validate, fraud check, decide, process, notify).

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
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import awacs.awslambda as lambda_actions
import awacs.kms as kms_actions
import awacs.sns as sns_actions
from awacs.aws import Allow, Policy, Statement
from troposphere import GetAtt, Ref, Template, iam, stepfunctions

from . import blocks
from .common import arn, export, ignore_cfn_lint, import_value, new_template, resource_name, tags
from .config import EnvironmentConfig
from .function_catalog import FUNCTIONS_DIR, DeclarationError, FunctionDeclaration, alias_export_key, load_functions

LAYER = "workflow"
DEFINITION_FILE = "workflow.asl.json"
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


def _role(template: Template, config: EnvironmentConfig, called, topic_keys, state_machine_name: str) -> iam.Role:
    data_key_arn = import_value(config, "security", "DataKeyArn")
    statements = [
        Statement(
            Sid="EncryptWithDataKey",
            Effect=Allow,
            # The topic and the execution data are both encrypted with the data key.
            Action=[kms_actions.Decrypt, kms_actions.GenerateDataKey],
            Resource=[data_key_arn],
        ),
        *blocks.vended_logs_statements(),
    ]
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
            "StateMachineRole",
            RoleName=resource_name(config, "workflow-state-machine"),
            Description="Payment workflow: invoke its function aliases, publish notifications, log, trace",
            AssumeRolePolicyDocument=trust,
            Policies=[iam.Policy(PolicyName="payment-workflow", PolicyDocument=Policy(Version="2012-10-17", Statement=statements))],
            Tags=tags(config),
        )
    )


def _substitutions(config: EnvironmentConfig, called, topic_keys) -> dict:
    values = {function.name: import_value(config, "compute", alias_export_key(function.logical_name)) for function in called}
    values.update({key: import_value(config, *TOPICS[key]) for key in topic_keys})
    values[PARTITION_PLACEHOLDER] = Ref("AWS::Partition")
    return values


def build(config: EnvironmentConfig, functions_dir: Path = FUNCTIONS_DIR) -> Template:
    source = functions_dir / DEFINITION_FILE
    definition = load_definition(source)
    called, topic_keys = resolve_placeholders(placeholders(definition), load_functions(functions_dir), source)
    template = new_template(config, LAYER, "payment workflow state machine (Step Functions)")
    state_machine_name = resource_name(config, "payment-workflow")

    log_group = blocks.log_group(
        template,
        config,
        "StateMachineLogGroup",
        f"/aws/vendedlogs/states/{state_machine_name}",
        import_value(config, "security", "LogsKeyArn"),
    )
    role = _role(template, config, called, topic_keys, state_machine_name)
    state_machine = template.add_resource(
        stepfunctions.StateMachine(
            "PaymentStateMachine",
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
    export(template, config, LAYER, "StateMachineArn", Ref(state_machine), "ARN of the payment workflow state machine")
    export(template, config, LAYER, "StateMachineName", GetAtt(state_machine, "Name"), "Name of the payment workflow state machine")
    return template

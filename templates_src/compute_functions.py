"""Lambda functions of the compute layer, generated from `functions/<name>/function.yaml`.

Design decisions:
- One role per function. Its inline policy holds only what is specific to the function: writing
  to its own log group, what its `uses` and triggers grant (one statement per resource ARN, one
  per KMS key, derived by `resources.grants`), any escape-hatch permission of its declaration
  (`Exception<n>`), sending to the failure queue. What every function needs (X-Ray, decrypting its data-key-encrypted environment)
  is one shared managed policy, and ENI management for the VPC is AWS's
  AWSLambdaVPCAccessExecutionRole: both keep the template small and say the same thing once.
- Rollout: each function publishes an `AWS::Lambda::Version` whose logical id carries the first
  8 hex of the code sha256 and whose Description carries a digest of the whole function
  configuration, so a code change or a configuration change publishes a new version (a Version's
  properties are replace-only), and the alias `live` moves to it. Every trigger and every other
  layer (api, workflow) invokes the alias, never $LATEST. Old versions are retained so an
  operator can point `live` back at once; a failed stack update rolls the alias back by itself.
  No CodeDeploy DeploymentPreference: it needs the SAM transform and a CodeDeploy application
  per function, too much machinery for eight functions whose rollback is one alias update.
- Failures of asynchronous invocations (EventBridge for S3 objects, SNS) land in one shared
  failure queue (`payments-<env>-function-dlq`), with an alarm to the alarm topic when it is not
  empty. EventBridge and SNS write to that queue as service principals, so it has its own KMS key
  whose policy names exactly those two services: the shared data key stays closed to them.
  Synchronously invoked functions (API Gateway, Step Functions, SQS pollers) never use a Lambda
  DLQ (the caller sees the error, SQS has its own redrive), so they carry no DeadLetterConfig.
- S3 objects reach a function through an EventBridge rule on "Object Created", never a bucket
  notification: storage must not depend on compute.
"""
from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import awacs.kms as kms_actions
import awacs.logs as logs_actions
import awacs.sqs as sqs_actions
import awacs.xray as xray_actions
from awacs.aws import Action, Allow, ArnEquals, Condition, Policy, Principal, Statement, StringLike
from troposphere import GetAtt, Join, Parameter, Ref, Split, Sub, Template, awslambda, cloudwatch, events, iam, sns, sqs
from troposphere.validators import integer

from platform_contracts import LAMBDA_DEFAULT_ACCOUNT_CONCURRENCY, LAMBDA_MIN_UNRESERVED

from . import blocks
from .common import import_value, keep_data, resource_name, skip_checkov, tags
from .config import ConfigError, EnvironmentConfig
from .function_catalog import DeclarationError, ExportRef, FunctionDeclaration, ReservedConcurrency
from .packaging import artifact_key, package
from .resources import RESOURCES, Grants

RUNTIME = "python3.12"
# Graviton: about 20 % cheaper per GB-second; the packages hold Python sources only (a test keeps
# it so), so nothing depends on the CPU. Must match the Powertools layer's architecture below.
ARCHITECTURE = "arm64"
POWERTOOLS_VERSION = "3.37.0"
POWERTOOLS_LAYER_SSM_PATH = f"/aws/service/powertools/python/{ARCHITECTURE}/{RUNTIME}/{POWERTOOLS_VERSION}"
METRICS_NAMESPACE = "Payments"
ALIAS_NAME = "live"
ASYNC_TRIGGERS = frozenset({"s3", "sns"})  # EventBridge and SNS invoke Lambda asynchronously
# Set by the platform only.
RESERVED_ENVIRONMENT = ("ENVIRONMENT",)
# Every function's defaults, which a declaration may still override. One service name for all:
# the business metrics' dimension set is {service: payments} (monitoring.BUSINESS_SERVICE, which a
# test keeps equal), so a function publishing under its own name would fall off the dashboard.
PLATFORM_ENVIRONMENT_DEFAULTS = {
    "POWERTOOLS_SERVICE_NAME": "payments",
    "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
    "LOG_LEVEL": "INFO",
}
FAILURE_QUEUE_RETENTION_S = 14 * 24 * 3600
EVENT_RETRY_ATTEMPTS = 8
EVENT_MAX_AGE_S = 6 * 3600
# AWS's managed policy for Lambda ENIs in a VPC: ec2:CreateNetworkInterface, Describe*, Delete
# and (Un)AssignPrivateIpAddresses, which accept only Resource "*" at the API. The managed policy
# says so once for every function instead of eight inline "*" statements.
VPC_ACCESS_POLICY = "arn:${AWS::Partition}:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"


class QueueScalingConfig(awslambda.ScalingConfig):
    """The event source mapping's ScalingConfig. troposphere 4.11.1 declares two classes named
    ScalingConfig in awslambda and the later one (web function endpoints) wins; this restores
    the event source mapping's shape while staying the type the mapping accepts."""

    props = {"MaximumConcurrency": (integer, False)}


class FunctionTemplateError(DeclarationError):
    """A declaration cannot be turned into resources; the message names the function (the
    build reports it like any other declaration error, without a traceback)."""


def imported(config: EnvironmentConfig, reference: ExportRef):
    return _imported(config, reference.layer, reference.key, reference.suffix)


def _imported(config: EnvironmentConfig, layer: str, key: str, suffix: str = ""):
    value = import_value(config, layer, key)
    return Join("", [value, suffix]) if suffix else value


def resource_value(config: EnvironmentConfig, name: str):
    """What a resource's environment variable holds (its name, URL or ARN), imported."""
    return import_value(config, RESOURCES[name].layer, RESOURCES[name].value_key)


def resource_arn(config: EnvironmentConfig, name: str):
    return import_value(config, RESOURCES[name].layer, RESOURCES[name].arn_key)


def function_name(config: EnvironmentConfig, declaration: FunctionDeclaration) -> str:
    return resource_name(config, declaration.name.replace("_", "-"))


def is_async(declaration: FunctionDeclaration) -> bool:
    return bool(declaration.trigger_types() & ASYNC_TRIGGERS)


def add_functions(
    template: Template, config: EnvironmentConfig, declarations: list[FunctionDeclaration], functions_dir: Path
) -> dict[str, tuple[awslambda.Function, awslambda.Alias]]:
    """Every declared function with its role, log group, version, alias and triggers.
    Returns {declaration name: (function, alias)} for the exports."""
    if not declarations:
        return {}
    check_reserved_concurrency(config, declarations)
    powertools_layer = template.add_parameter(
        Parameter(
            "PowertoolsLayerArn",
            Type="AWS::SSM::Parameter::Value<String>",
            Default=POWERTOOLS_LAYER_SSM_PATH,
            Description="SSM parameter AWS publishes with the Powertools for AWS Lambda (Python) layer ARN",
        )
    )
    baseline = _baseline_policy(template, config)
    failures = _failure_queue(template, config) if any(is_async(d) for d in declarations) else None
    created = {}
    for declaration in declarations:
        created[declaration.name] = _add_function(
            template, config, declaration, functions_dir, Ref(powertools_layer), baseline, failures
        )
    if failures is not None:
        _allow_failure_delivery(template, config, failures, declarations)
    return created


def _baseline_policy(template: Template, config: EnvironmentConfig) -> iam.ManagedPolicy:
    return template.add_resource(
        iam.ManagedPolicy(
            "FunctionBaselinePolicy",
            ManagedPolicyName=resource_name(config, "function-baseline"),
            Description="What every payments function needs: X-Ray traces, decrypting its environment",
            PolicyDocument=Policy(
                Version="2012-10-17",
                Statement=[
                    Statement(
                        Sid="XRayTraces",
                        Effect=Allow,
                        Action=[xray_actions.PutTraceSegments, xray_actions.PutTelemetryRecords],
                        # X-Ray's PutTraceSegments/PutTelemetryRecords have no resource-level
                        # permissions: AWS accepts only "*" here.
                        Resource=["*"],
                    ),
                    Statement(
                        Sid="DecryptEnvironment",
                        Effect=Allow,
                        Action=[kms_actions.Decrypt],
                        Resource=[import_value(config, "security", "DataKeyArn")],
                    ),
                ],
            ),
        )
    )


class FailureQueue:
    """The shared queue for failed asynchronous invocations and its key."""

    def __init__(self, queue: sqs.Queue, key):
        self.queue = queue
        self.key = key
        self.arn = GetAtt(queue, "Arn")
        self.key_arn = GetAtt(key, "Arn")


def _failure_queue(template: Template, config: EnvironmentConfig) -> FailureQueue:
    key = blocks.kms_key(
        template,
        config,
        "FunctionDlqKey",
        "function-dlq",
        [
            # EventBridge rules and SNS subscriptions encrypt what they drop into the failure
            # queue: each service may use the key only for this environment's rules and topics.
            blocks.service_key_statement(
                "EventBridgeRulesUseKey", "events.amazonaws.com",
                f"arn:${{AWS::Partition}}:events:${{AWS::Region}}:${{AWS::AccountId}}:rule/{resource_name(config, '*')}",
            ),
            blocks.service_key_statement(
                "SnsTopicsUseKey", "sns.amazonaws.com",
                f"arn:${{AWS::Partition}}:sns:${{AWS::Region}}:${{AWS::AccountId}}:{resource_name(config, '*')}",
            ),
        ],
    )
    queue = template.add_resource(
        keep_data(
            sqs.Queue(
                "FunctionDlq",
                QueueName=resource_name(config, "function-dlq"),
                KmsMasterKeyId=GetAtt(key, "Arn"),
                KmsDataKeyReusePeriodSeconds=300,
                MessageRetentionPeriod=FAILURE_QUEUE_RETENTION_S,
                Tags=tags(config, resource_name(config, "function-dlq")),
            ),
            config,
        )
    )
    template.add_resource(
        cloudwatch.Alarm(
            "FunctionDlqNotEmptyAlarm",
            AlarmName=resource_name(config, "function-dlq-not-empty"),
            AlarmDescription="A function's asynchronous invocation failed for good; its event waits in the failure queue",
            Namespace="AWS/SQS",
            MetricName="ApproximateNumberOfMessagesVisible",
            Dimensions=[cloudwatch.MetricDimension(Name="QueueName", Value=GetAtt(queue, "QueueName"))],
            Statistic="Maximum",
            Period=300,
            EvaluationPeriods=1,
            Threshold=0,
            ComparisonOperator="GreaterThanThreshold",
            TreatMissingData="notBreaching",
            AlarmActions=[import_value(config, "messaging", "AlarmTopicArn")],
            Tags=tags(config),
        )
    )
    return FailureQueue(queue, key)


def _allow_failure_delivery(
    template: Template, config: EnvironmentConfig, failures: FailureQueue, declarations: list[FunctionDeclaration]
) -> None:
    """EventBridge rules and SNS subscriptions deliver what they could not hand to a function."""
    sources = {"events.amazonaws.com": [], "sns.amazonaws.com": []}
    for declaration in declarations:
        for index, trigger in enumerate(declaration.triggers):
            if trigger.type == "s3":
                sources["events.amazonaws.com"].append(GetAtt(_rule_id(declaration, index), "Arn"))
            elif trigger.type == "sns":
                sources["sns.amazonaws.com"].append(resource_arn(config, trigger.topic))
    statements = [
        Statement(
            Sid=principal.split(".")[0].capitalize() + "DeliversFailures",
            Effect=Allow,
            Principal=Principal("Service", principal),
            Action=[sqs_actions.SendMessage],
            Resource=[failures.arn],
            Condition=Condition(ArnEquals("aws:SourceArn", arns)),
        )
        for principal, arns in sources.items()
        if arns
    ]
    if statements:
        statements.append(blocks.deny_insecure_transport([sqs_actions.Action("*")], [failures.arn]))
        template.add_resource(
            sqs.QueuePolicy(
                "FunctionDlqPolicy",
                Queues=[Ref(failures.queue)],
                PolicyDocument=Policy(Version="2012-10-17", Statement=statements),
            )
        )


def _add_function(
    template: Template,
    config: EnvironmentConfig,
    declaration: FunctionDeclaration,
    functions_dir: Path,
    powertools_layer,
    baseline: iam.ManagedPolicy,
    failures: FailureQueue | None,
) -> tuple[awslambda.Function, awslambda.Alias]:
    logical = declaration.logical_name
    name = function_name(config, declaration)
    log_group = blocks.log_group(
        template, config, f"{logical}LogGroup", f"/aws/lambda/{name}", import_value(config, "security", "LogsKeyArn")
    )
    sends_failures = failures is not None and is_async(declaration)
    role = _function_role(template, config, declaration, log_group, baseline, failures if sends_failures else None)
    function = template.add_resource(
        awslambda.Function(
            f"{logical}Function",
            FunctionName=name,
            Description=declaration.description[:256],
            Runtime=RUNTIME,
            Architectures=[ARCHITECTURE],
            Handler=declaration.handler,
            MemorySize=declaration.memory_mb,
            Timeout=declaration.timeout_s,
            Role=GetAtt(role, "Arn"),
            Code=awslambda.Code(
                S3Bucket=import_value(config, "artifacts", "ArtifactBucketName"),
                S3Key=artifact_key(declaration, functions_dir),
            ),
            Layers=[powertools_layer],
            Environment=awslambda.Environment(Variables=_environment(config, declaration)),
            KmsKeyArn=import_value(config, "security", "DataKeyArn"),
            VpcConfig=awslambda.VPCConfig(
                SubnetIds=Split(",", import_value(config, "network", "PrivateSubnetIds")),
                SecurityGroupIds=[import_value(config, "network", "LambdaSecurityGroupId")],
            ),
            TracingConfig=awslambda.TracingConfig(Mode="Active"),
            LoggingConfig=awslambda.LoggingConfig(LogGroup=Ref(log_group)),
            ReservedConcurrentExecutions=reserved_concurrency(config, declaration),
            **_snapstart(declaration),
            Tags=tags(config, name),
        )
    )
    if sends_failures:
        function.DeadLetterConfig = awslambda.DeadLetterConfig(TargetArn=failures.arn)
    else:
        skip_checkov(
            function,
            "CKV_AWS_116",
            "invoked synchronously only (API Gateway, Step Functions, SQS): the caller or the queue's redrive gets the failure",
        )
    alias = _version_and_alias(template, declaration, function, functions_dir)
    _add_triggers(template, config, declaration, alias, failures)
    return function, alias


def _environment(config: EnvironmentConfig, declaration: FunctionDeclaration) -> dict:
    clashes = sorted(set(declaration.environment) & set(RESERVED_ENVIRONMENT))
    aws_reserved = sorted(name for name in declaration.environment if name.startswith("AWS_"))
    if clashes or aws_reserved:
        raise FunctionTemplateError(
            f"function {declaration.name}: environment {', '.join(clashes + aws_reserved)} "
            "is set by the platform or reserved by Lambda; remove it from function.yaml"
        )
    variables = {"ENVIRONMENT": config.name, **PLATFORM_ENVIRONMENT_DEFAULTS}
    for key, (layer, export_key) in declaration.grants().variables.items():
        variables[key] = import_value(config, layer, export_key)
    for key, value in sorted(declaration.environment.items()):
        variables[key] = imported(config, value) if isinstance(value, ExportRef) else value.value
    return variables


def reserved_concurrency(config: EnvironmentConfig, declaration: FunctionDeclaration) -> int:
    """The function's reservation: the environment setting its function.yaml names."""
    if declaration.reserved_concurrency is ReservedConcurrency.BATCH:
        return config.batch.reserved_concurrency
    return config.compute.lambda_reserved_concurrency


def check_reserved_concurrency(config: EnvironmentConfig, declarations: list[FunctionDeclaration]) -> None:
    """ConfigError when the environment's reservations would leave a fresh account (quota
    LAMBDA_DEFAULT_ACCOUNT_CONCURRENCY) fewer than LAMBDA_MIN_UNRESERVED unreserved executions:
    Lambda refuses such a reservation, and preflight would stop the deploy."""
    budget = LAMBDA_DEFAULT_ACCOUNT_CONCURRENCY - LAMBDA_MIN_UNRESERVED
    reserved = {d.name: reserved_concurrency(config, d) for d in declarations}
    if sum(reserved.values()) > budget:
        by_setting = Counter(d.reserved_concurrency.value for d in declarations)
        raise ConfigError(
            f"{config.source}: {len(reserved)} functions reserve "
            f"{sum(reserved.values())} concurrent executions ({by_setting['compute']} x compute.lambda_reserved_concurrency "
            f"{config.compute.lambda_reserved_concurrency} + {by_setting['batch']} x batch.reserved_concurrency "
            f"{config.batch.reserved_concurrency}); a fresh account allows {budget} "
            f"({LAMBDA_DEFAULT_ACCOUNT_CONCURRENCY} minus the {LAMBDA_MIN_UNRESERVED} Lambda keeps unreserved)"
        )


def _snapstart(declaration: FunctionDeclaration) -> dict:
    """SnapStart applies to published versions; the function's `live` alias always points at one."""
    return {"SnapStart": awslambda.SnapStart(ApplyOn="PublishedVersions")} if declaration.snapstart else {}


def _function_role(
    template: Template,
    config: EnvironmentConfig,
    declaration: FunctionDeclaration,
    log_group,
    baseline: iam.ManagedPolicy,
    failures: FailureQueue | None,
) -> iam.Role:
    statements = [
        Statement(
            Sid="OwnLogGroup",
            Effect=Allow,
            Action=[logs_actions.CreateLogStream, logs_actions.PutLogEvents],
            Resource=[GetAtt(log_group, "Arn")],
        )
    ]
    statements += _granted_statements(config, declaration.grants())
    for index, permission in enumerate(declaration.permissions):
        statements.append(
            Statement(
                Sid=f"Exception{index}",
                Effect=Allow,
                Action=_actions(permission.actions),
                Resource=[imported(config, resource) for resource in permission.resources],
            )
        )
    if failures is not None:
        statements += [
            Statement(Sid="SendFailures", Effect=Allow, Action=[sqs_actions.SendMessage], Resource=[failures.arn]),
            Statement(
                Sid="EncryptFailures",
                Effect=Allow,
                Action=[kms_actions.GenerateDataKey, kms_actions.Decrypt],
                Resource=[failures.key_arn],
            ),
        ]
    return template.add_resource(
        iam.Role(
            f"{declaration.logical_name}Role",
            RoleName=function_name(config, declaration),
            AssumeRolePolicyDocument=blocks.service_trust("lambda.amazonaws.com", on_behalf_of_this_account=False),
            ManagedPolicyArns=[Ref(baseline), Sub(VPC_ACCESS_POLICY)],
            Policies=[iam.Policy(PolicyName="function", PolicyDocument=Policy(Version="2012-10-17", Statement=statements))],
            Tags=tags(config, function_name(config, declaration)),
        )
    )


def _actions(actions) -> list[Action]:
    return [Action(*action.split(":", 1)) for action in actions]


def _sid(*words: str) -> str:
    """payment_queue, KMS -> PaymentQueueKms: statement ids are alphanumeric."""
    return "".join(part[:1].upper() + part[1:] for word in words for part in word.split("_") if part)


def _granted_statements(config: EnvironmentConfig, grants: Grants) -> list[Statement]:
    """One statement per resource ARN the function's uses and triggers reach, then one per KMS key."""
    statements = [
        Statement(
            Sid=_sid(grant.resource, "indexes" if grant.arn[2].endswith("/index/*") else "listing" if grant.s3_prefixes else ""),
            Effect=Allow,
            Action=_actions(grant.actions),
            Resource=[_imported(config, *grant.arn)],
            **({"Condition": Condition(StringLike("s3:prefix", grant.condition["StringLike"]["s3:prefix"]))}
               if grant.s3_prefixes else {}),
        )
        for grant in grants.statements
    ]
    statements += [
        Statement(Sid=_sid(key_export.removesuffix("Arn")), Effect=Allow, Action=_actions(actions),
                  Resource=[import_value(config, "security", key_export)])
        for key_export, actions in grants.kms.items()
    ]
    return statements


def configuration_digest(function: awslambda.Function) -> str:
    """Digest of the function's rendered properties (code key included): any change to it must
    publish a new version."""
    rendered = json.dumps(function.to_dict()["Properties"], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(rendered.encode()).hexdigest()


def _version_and_alias(
    template: Template, declaration: FunctionDeclaration, function: awslambda.Function, functions_dir: Path
) -> awslambda.Alias:
    logical = declaration.logical_name
    _, code_sha = package(declaration, functions_dir)
    version = template.add_resource(
        awslambda.Version(
            f"{logical}Version{code_sha[:8]}",
            FunctionName=Ref(function),
            Description=f"code {code_sha[:8]} configuration {configuration_digest(function)[:8]}",
        )
    )
    # Keep superseded versions: the function's deletion removes them anyway, and until then
    # an operator can point `live` back at the previous version in seconds.
    version.DeletionPolicy = "Retain"
    version.UpdateReplacePolicy = "Retain"
    return template.add_resource(
        awslambda.Alias(
            f"{logical}Alias",
            FunctionName=Ref(function),
            FunctionVersion=GetAtt(version, "Version"),
            Name=ALIAS_NAME,
        )
    )


def _rule_id(declaration: FunctionDeclaration, index: int) -> str:
    return f"{declaration.logical_name}S3Rule{index}"


def _add_triggers(
    template: Template,
    config: EnvironmentConfig,
    declaration: FunctionDeclaration,
    alias: awslambda.Alias,
    failures: FailureQueue | None,
) -> None:
    logical = declaration.logical_name
    for index, trigger in enumerate(declaration.triggers):
        if trigger.type == "sqs":
            template.add_resource(
                awslambda.EventSourceMapping(
                    f"{logical}Queue{index}",
                    FunctionName=Ref(alias),
                    EventSourceArn=resource_arn(config, trigger.queue),
                    BatchSize=trigger.batch_size,
                    FunctionResponseTypes=["ReportBatchItemFailures"],
                    Tags=tags(config),
                    # Never poll faster than the reserved concurrency lets the function run:
                    # throttled batches would only bounce back to the queue.
                    ScalingConfig=QueueScalingConfig(
                        MaximumConcurrency=max(2, config.compute.lambda_reserved_concurrency)
                    ),
                )
            )
        elif trigger.type == "s3":
            _s3_object_rule(template, config, declaration, index, trigger, alias, failures)
        elif trigger.type == "sns":
            topic_arn = resource_arn(config, trigger.topic)
            template.add_resource(
                sns.SubscriptionResource(
                    f"{logical}Topic{index}",
                    Protocol="lambda",
                    Endpoint=Ref(alias),
                    TopicArn=topic_arn,
                    RedrivePolicy={"deadLetterTargetArn": failures.arn},
                )
            )
            _allow_invoke(template, f"{logical}Topic{index}Invoke", alias, "sns.amazonaws.com", topic_arn)
        # api and stepfunctions: the api and workflow layers grant their own invoke permission
        # on the exported alias ARN, so nothing is created here.


def s3_key_filter(prefix: str, suffix: str) -> list | None:
    """EventBridge content filter for an object key. Prefix and suffix together need a
    wildcard: several conditions on one field are ORed, not ANDed."""
    if prefix and suffix:
        escape = lambda text: text.replace("\\", "\\\\").replace("*", "\\*")  # noqa: E731
        return [{"wildcard": f"{escape(prefix)}*{escape(suffix)}"}]
    if prefix:
        return [{"prefix": prefix}]
    if suffix:
        return [{"suffix": suffix}]
    return None


def _s3_object_rule(template, config, declaration, index, trigger, alias, failures: FailureQueue) -> None:
    detail = {"bucket": {"name": [resource_value(config, trigger.bucket)]}}
    key_filter = s3_key_filter(trigger.prefix, trigger.suffix)
    if key_filter:
        detail["object"] = {"key": key_filter}
    rule = template.add_resource(
        events.Rule(
            _rule_id(declaration, index),
            Name=resource_name(config, declaration.name.replace("_", "-"), "s3", str(index)),
            Description=f"New objects in {trigger.bucket} {trigger.prefix}*{trigger.suffix} -> {declaration.name}",
            State="ENABLED",
            EventPattern={"source": ["aws.s3"], "detail-type": ["Object Created"], "detail": detail},
            Tags=tags(config),
            Targets=[
                events.Target(
                    Id="function",
                    Arn=Ref(alias),
                    RetryPolicy=events.RetryPolicy(
                        MaximumRetryAttempts=EVENT_RETRY_ATTEMPTS, MaximumEventAgeInSeconds=EVENT_MAX_AGE_S
                    ),
                    DeadLetterConfig=events.DeadLetterConfig(Arn=failures.arn),
                )
            ],
        )
    )
    _allow_invoke(template, f"{_rule_id(declaration, index)}Invoke", alias, "events.amazonaws.com", GetAtt(rule, "Arn"))


def _allow_invoke(template: Template, logical_id: str, alias, principal: str, source_arn) -> None:
    template.add_resource(
        awslambda.Permission(
            logical_id,
            Action="lambda:InvokeFunction",
            FunctionName=Ref(alias),
            Principal=principal,
            SourceArn=source_arn,
        )
    )

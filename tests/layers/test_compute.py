"""compute layer: Lambda functions from the declarations, ECS Fargate behind the ALB, WAF.

Most tests build against a small catalog written under tmp_path (one function per trigger
kind), so they pin the generator's behaviour whatever the real catalog holds; the last tests
build the real `functions/` catalog."""
from __future__ import annotations

import json
import re
import shutil
import textwrap
from pathlib import Path

import pytest

from templates_src import compute
from templates_src.compute_functions import FunctionTemplateError, s3_key_filter
from templates_src.config import ConfigError, load_environment
from templates_src.function_catalog import DeclarationError, load_functions
from templates_src.packaging import package

from .helpers import assert_data_policy, contract_cell_keys

ROOT = Path(__file__).resolve().parents[2]
ENVIRONMENTS = ("dev", "staging", "prod")

DECLARATIONS = {
    "payment_api": """
        description: Creates and reads payments.
        memory_mb: 512
        timeout_s: 10
        returns: API Gateway proxy response
        triggers:
          - type: api
        uses:
          transactions_table: [read_write, query_indexes]
        environment:
          LOG_LEVEL: {value: DEBUG}
    """,
    "queue_worker": """
        description: Works the payment queue.
        memory_mb: 256
        timeout_s: 30
        returns: SQS batch item failures
        triggers:
          - type: sqs
            queue: payment_queue
            batch_size: 5
    """,
    "batch_ingestion": """
        description: Ingests batch CSV files.
        memory_mb: 1024
        timeout_s: 300
        returns: nothing
        triggers:
          - type: s3
            bucket: batch_incoming
            suffix: .csv
    """,
    "audit_logger": """
        description: Writes the audit trail.
        memory_mb: 256
        timeout_s: 30
        returns: nothing
        triggers:
          - type: sns
            topic: payment_notifications_topic
    """,
}


def write_catalog(root: Path, declarations: dict[str, str], code: str = "def handler(event, context):\n    return {}\n") -> Path:
    (root / "paylib").mkdir(parents=True, exist_ok=True)
    (root / "paylib" / "__init__.py").write_text("")
    for name, body in declarations.items():
        (root / name).mkdir(exist_ok=True)
        (root / name / "function.yaml").write_text(textwrap.dedent(body))
        (root / name / "app.py").write_text(code)
    return root


def render(env: str, functions_dir: Path) -> dict:
    return json.loads(compute.build(load_environment(env), functions_dir).to_json())


@pytest.fixture(scope="module")
def catalog(tmp_path_factory) -> Path:
    return write_catalog(tmp_path_factory.mktemp("functions"), DECLARATIONS)


@pytest.fixture(scope="module")
def built(catalog) -> dict[str, dict]:
    return {env: render(env, catalog) for env in ENVIRONMENTS}


def resources_of(template: dict, resource_type: str) -> dict[str, dict]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == resource_type}


def imported(env: str, layer: str, key: str) -> dict:
    return {"Fn::ImportValue": f"payments-{env}-{layer}-{key}"}


def statements(role: dict) -> list[dict]:
    return [s for policy in role["Properties"].get("Policies", []) for s in policy["PolicyDocument"]["Statement"]]


# --- Lambda functions -------------------------------------------------------------------------


def test_a_function_reserving_from_batch_gets_the_batch_reservation(tmp_path):
    body = textwrap.dedent("""
        description: Ingests one batch of rows of the map.
        memory_mb: 256
        timeout_s: 10
        returns: nothing
        reserved_concurrency: batch
        triggers:
          - type: stepfunctions
    """)
    config = load_environment("staging")
    template = render("staging", write_catalog(tmp_path, {"chunk": body, "other": body.replace("reserved_concurrency: batch\n", "")}))
    reserved = {k: v["Properties"]["ReservedConcurrentExecutions"] for k, v in resources_of(template, "AWS::Lambda::Function").items()}
    assert reserved == {"ChunkFunction": config.batch.reserved_concurrency, "OtherFunction": config.compute.lambda_reserved_concurrency}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_function_runs_hardened_in_the_private_subnets(built, env):
    template = built[env]
    config = load_environment(env)
    functions = resources_of(template, "AWS::Lambda::Function")
    assert sorted(functions) == sorted(f"{n}Function" for n in ("PaymentApi", "QueueWorker", "BatchIngestion", "AuditLogger"))
    for _logical_id, function in functions.items():
        props = function["Properties"]
        assert props["Runtime"] == "python3.12"
        assert props["TracingConfig"] == {"Mode": "Active"}
        assert props["ReservedConcurrentExecutions"] == config.compute.lambda_reserved_concurrency
        assert props["KmsKeyArn"] == imported(env, "security", "DataKeyArn")
        assert props["VpcConfig"]["SubnetIds"] == {"Fn::Split": [",", imported(env, "network", "PrivateSubnetIds")]}
        assert props["VpcConfig"]["SecurityGroupIds"] == [imported(env, "network", "LambdaSecurityGroupId")]
        assert props["Layers"] == [{"Ref": "PowertoolsLayerArn"}]
        assert props["Code"]["S3Bucket"] == imported(env, "artifacts", "ArtifactBucketName")
        assert props["FunctionName"].startswith(f"payments-{env}-")
        variables = props["Environment"]["Variables"]
        assert variables["ENVIRONMENT"] == env
        assert variables["POWERTOOLS_METRICS_NAMESPACE"] == "Payments"
        assert variables["POWERTOOLS_SERVICE_NAME"]
        log_group_id = props["LoggingConfig"]["LogGroup"]["Ref"]
        log_group = template["Resources"][log_group_id]["Properties"]
        assert log_group["LogGroupName"] == f"/aws/lambda/{props['FunctionName']}"
        assert log_group["RetentionInDays"] == config.log_retention_days
        assert log_group["KmsKeyId"] == imported(env, "security", "LogsKeyArn")


def test_powertools_layer_comes_from_the_public_ssm_parameter(built):
    parameter = built["dev"]["Parameters"]["PowertoolsLayerArn"]
    assert parameter["Type"] == "AWS::SSM::Parameter::Value<String>"
    assert parameter["Default"] == "/aws/service/powertools/python/arm64/python3.12/3.37.0"


def test_code_comes_from_the_content_addressed_artifact(built, catalog):
    declaration = next(d for d in load_functions(catalog) if d.name == "queue_worker")
    _, digest = package(declaration, catalog)
    code = built["dev"]["Resources"]["QueueWorkerFunction"]["Properties"]["Code"]
    assert code["S3Key"] == f"functions/queue_worker/{digest}.zip"


def test_declared_environment_resolves_exports_and_literals(built):
    variables = built["staging"]["Resources"]["PaymentApiFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["TRANSACTIONS_TABLE"] == imported("staging", "data", "TransactionsTableName")
    assert variables["LOG_LEVEL"] == "DEBUG"  # the declaration overrides the platform default


def test_powertools_defaults_come_from_the_platform(built):
    resources = built["staging"]["Resources"]
    for logical_id in ("PaymentApiFunction", "QueueWorkerFunction"):
        variables = resources[logical_id]["Properties"]["Environment"]["Variables"]
        assert variables["POWERTOOLS_SERVICE_NAME"] == "payments", logical_id
        assert variables["POWERTOOLS_METRICS_NAMESPACE"] == "Payments", logical_id
    queue_worker = resources["QueueWorkerFunction"]["Properties"]["Environment"]["Variables"]
    assert queue_worker["LOG_LEVEL"] == "INFO"


def test_each_role_writes_only_its_own_log_group_and_declared_resources(built):
    template = built["prod"]
    role = template["Resources"]["PaymentApiRole"]
    by_sid = {s["Sid"]: s for s in statements(role)}
    assert by_sid["OwnLogGroup"]["Resource"] == [{"Fn::GetAtt": ["PaymentApiLogGroup", "Arn"]}]
    assert by_sid["TransactionsTable"]["Action"] == [
        "dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"]
    assert by_sid["TransactionsTable"]["Resource"] == [imported("prod", "data", "TransactionsTableArn")]
    assert by_sid["TransactionsTableIndexes"] == {
        "Sid": "TransactionsTableIndexes", "Effect": "Allow", "Action": ["dynamodb:Query"],
        "Resource": [{"Fn::Join": ["", [imported("prod", "data", "TransactionsTableArn"), "/index/*"]]}]}
    assert by_sid["DataKey"]["Action"] == ["kms:Decrypt", "kms:GenerateDataKey"]
    assert by_sid["DataKey"]["Resource"] == [imported("prod", "security", "DataKeyArn")]
    # Roles are not shared: every function has its own.
    roles = {f["Properties"]["Role"]["Fn::GetAtt"][0] for f in resources_of(template, "AWS::Lambda::Function").values()}
    assert len(roles) == 4


def test_no_wildcard_action_and_star_resources_only_where_aws_requires_them(built):
    allowed_star = {"xray:PutTraceSegments", "xray:PutTelemetryRecords", "ecr:GetAuthorizationToken"}
    for env, template in built.items():
        for logical_id, resource in template["Resources"].items():
            documents = [p["PolicyDocument"] for p in resource["Properties"].get("Policies", [])]
            if resource["Type"] in ("AWS::IAM::ManagedPolicy", "AWS::SQS::QueuePolicy"):
                documents.append(resource["Properties"]["PolicyDocument"])
            for document in documents:
                for statement in document["Statement"]:
                    if statement["Effect"] == "Deny":
                        continue  # a Deny grants nothing (the TLS-only statement denies sqs:*)
                    assert all("*" not in action for action in statement["Action"]), (env, logical_id)
                    if "*" in statement.get("Resource", []):
                        assert set(statement["Action"]) <= allowed_star, (env, logical_id, statement)


def test_version_id_follows_the_code_and_the_configuration(tmp_path):
    one = {"queue_worker": DECLARATIONS["queue_worker"]}
    first = render("dev", write_catalog(tmp_path / "a", one))
    changed_code = render("dev", write_catalog(tmp_path / "b", one, code="def handler(e, c):\n    return None\n"))
    bigger = {"queue_worker": DECLARATIONS["queue_worker"].replace("memory_mb: 256", "memory_mb: 512")}
    changed_config = render("dev", write_catalog(tmp_path / "c", bigger))

    def version(template):
        (logical_id, resource), = resources_of(template, "AWS::Lambda::Version").items()
        return logical_id, resource["Properties"]["Description"]

    first_id, first_description = version(first)
    _, digest = package(load_functions(tmp_path / "a")[0], tmp_path / "a")
    assert first_id == f"QueueWorkerVersion{digest[:8]}"
    assert version(changed_code)[0] != first_id
    config_id, config_description = version(changed_config)
    assert config_id == first_id and config_description != first_description
    alias = first["Resources"]["QueueWorkerAlias"]["Properties"]
    assert alias["Name"] == "live"
    assert alias["FunctionVersion"] == {"Fn::GetAtt": [first_id, "Version"]}


def test_queue_worker_polls_through_the_alias_with_partial_batch_responses(built):
    template = built["dev"]
    mapping = template["Resources"]["QueueWorkerQueue0"]["Properties"]
    assert mapping["FunctionName"] == {"Ref": "QueueWorkerAlias"}
    assert mapping["EventSourceArn"] == imported("dev", "messaging", "PaymentQueueArn")
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BatchSize"] == 5
    # the trigger binds `consume` on its queue (and decrypting its messages), like any use
    by_sid = {s["Sid"]: s for s in statements(template["Resources"]["QueueWorkerRole"])}
    assert by_sid["PaymentQueue"]["Action"] == [
        "sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"]
    assert by_sid["PaymentQueue"]["Resource"] == [imported("dev", "messaging", "PaymentQueueArn")]
    assert by_sid["DataKey"]["Action"] == ["kms:Decrypt"]
    variables = template["Resources"]["QueueWorkerFunction"]["Properties"]["Environment"]["Variables"]
    assert "PAYMENT_QUEUE_URL" not in variables  # the event names the queue


def test_csv_uploads_reach_the_batch_function_through_eventbridge(built):
    template = built["staging"]
    rule = template["Resources"]["BatchIngestionS3Rule0"]["Properties"]
    assert rule["EventPattern"] == {
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": {
            "bucket": {"name": [imported("staging", "storage", "BatchBucketName")]},
            "object": {"key": [{"wildcard": "incoming/*.csv"}]},
        },
    }
    (target,) = rule["Targets"]
    assert target["Arn"] == {"Ref": "BatchIngestionAlias"}
    assert target["DeadLetterConfig"]["Arn"] == {"Fn::GetAtt": ["FunctionDlq", "Arn"]}
    assert target["RetryPolicy"]["MaximumRetryAttempts"] > 0
    permission = template["Resources"]["BatchIngestionS3Rule0Invoke"]["Properties"]
    assert permission["Principal"] == "events.amazonaws.com"
    assert permission["SourceArn"] == {"Fn::GetAtt": ["BatchIngestionS3Rule0", "Arn"]}
    assert permission["FunctionName"] == {"Ref": "BatchIngestionAlias"}
    # No bucket notification: storage must not depend on compute.
    assert not resources_of(template, "AWS::S3::Bucket")


@pytest.mark.parametrize(
    "prefix, suffix, expected",
    [
        ("incoming/", ".csv", [{"wildcard": "incoming/*.csv"}]),
        ("in*coming/", ".csv", [{"wildcard": "in\\*coming/*.csv"}]),
        ("incoming/", "", [{"prefix": "incoming/"}]),
        ("", ".csv", [{"suffix": ".csv"}]),
        ("", "", None),
    ],
)
def test_object_key_filter(prefix, suffix, expected):
    assert s3_key_filter(prefix, suffix) == expected


def test_topic_subscription_invokes_the_alias(built):
    template = built["dev"]
    subscription = template["Resources"]["AuditLoggerTopic0"]["Properties"]
    topic = imported("dev", "messaging", "PaymentNotificationsTopicArn")
    assert subscription == {
        "Protocol": "lambda",
        "Endpoint": {"Ref": "AuditLoggerAlias"},
        "TopicArn": topic,
        "RedrivePolicy": {"deadLetterTargetArn": {"Fn::GetAtt": ["FunctionDlq", "Arn"]}},
    }
    permission = template["Resources"]["AuditLoggerTopic0Invoke"]["Properties"]
    assert (permission["Principal"], permission["SourceArn"]) == ("sns.amazonaws.com", topic)


def test_async_functions_have_a_dead_letter_queue_and_sync_ones_say_why_not(built):
    template = built["prod"]
    for name in ("BatchIngestion", "AuditLogger"):
        function = template["Resources"][f"{name}Function"]
        assert function["Properties"]["DeadLetterConfig"] == {"TargetArn": {"Fn::GetAtt": ["FunctionDlq", "Arn"]}}
        sids = {s["Sid"] for s in statements(template["Resources"][f"{name}Role"])}
        assert {"SendFailures", "EncryptFailures"} <= sids
    for name in ("PaymentApi", "QueueWorker"):
        function = template["Resources"][f"{name}Function"]
        assert "DeadLetterConfig" not in function["Properties"]
        assert [s["id"] for s in function["Metadata"]["checkov"]["skip"]] == ["CKV_AWS_116"]
    dlq = template["Resources"]["FunctionDlq"]
    assert dlq["Properties"]["KmsMasterKeyId"] == {"Fn::GetAtt": ["FunctionDlqKey", "Arn"]}
    assert_data_policy(dlq, "prod")
    alarm = template["Resources"]["FunctionDlqNotEmptyAlarm"]["Properties"]
    assert alarm["AlarmActions"] == [imported("prod", "messaging", "AlarmTopicArn")]
    queue_statements = template["Resources"]["FunctionDlqPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    sources = {
        s["Principal"]["Service"]: s["Condition"]["ArnEquals"]["aws:SourceArn"] for s in queue_statements if s["Effect"] == "Allow"
    }
    (deny,) = [s for s in queue_statements if s["Effect"] == "Deny"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": False}}
    assert sources == {
        "events.amazonaws.com": [{"Fn::GetAtt": ["BatchIngestionS3Rule0", "Arn"]}],
        "sns.amazonaws.com": [imported("prod", "messaging", "PaymentNotificationsTopicArn")],
    }


def test_without_async_functions_there_is_no_failure_queue(tmp_path):
    template = render("dev", write_catalog(tmp_path, {"queue_worker": DECLARATIONS["queue_worker"]}))
    assert not resources_of(template, "AWS::SQS::Queue")
    assert not resources_of(template, "AWS::KMS::Key")


def test_platform_environment_variables_cannot_be_overridden(tmp_path):
    overriding = textwrap.dedent(DECLARATIONS["queue_worker"]) + "environment:\n  ENVIRONMENT: {value: prod}\n"
    catalog = write_catalog(tmp_path, {"queue_worker": overriding})
    with pytest.raises(FunctionTemplateError, match="queue_worker: environment ENVIRONMENT is set by the platform"):
        compute.build(load_environment("dev"), catalog)


def test_a_trigger_naming_no_queue_names_the_file(tmp_path):
    broken = {"queue_worker": DECLARATIONS["queue_worker"].replace("queue: payment_queue", "queue: messaging.PaymentQueueArn")}
    with pytest.raises(DeclarationError, match=r"queue_worker/function.yaml: triggers.0.sqs.queue: sqs trigger names "
                                               r"'messaging.PaymentQueueArn', not a queue \(known: payment_queue\)"):
        compute.build(load_environment("dev"), write_catalog(tmp_path, broken))


# --- ECS, ALB, auto scaling -------------------------------------------------------------------


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_task_runs_read_only_non_root_and_reaches_the_database_with_iam(built, env):
    settings = load_environment(env).compute.ecs
    template = built[env]
    task = template["Resources"]["ApiTaskDefinition"]["Properties"]
    assert (task["Cpu"], task["Memory"]) == (str(settings.cpu), str(settings.memory_mb))
    assert task["RequiresCompatibilities"] == ["FARGATE"] and task["NetworkMode"] == "awsvpc"
    assert task["ExecutionRoleArn"] != task["TaskRoleArn"]
    (container,) = task["ContainerDefinitions"]
    assert container["ReadonlyRootFilesystem"] is True
    assert not container["User"].startswith(("0", "root"))
    assert container["PortMappings"][0]["ContainerPort"] == settings.container_port
    # No password in the task: rotation of the master secret never breaks running tasks.
    assert "Secrets" not in container
    environment = {e["Name"]: e["Value"] for e in container["Environment"]}
    assert (environment["DB_USER"], environment["DB_AUTH"], environment["DB_NAME"]) == ("payments_app", "iam", "payments")
    (connect,) = statements(template["Resources"]["TaskRole"])
    assert connect["Action"] == ["rds-db:connect"]
    assert connect["Resource"] == [{"Fn::Sub": [
        "arn:${AWS::Partition}:rds-db:${AWS::Region}:${AWS::AccountId}:dbuser:${ClusterResourceId}/payments_app",
        {"ClusterResourceId": imported(env, "data", "DbClusterResourceId")}]}]
    logs = container["LogConfiguration"]
    assert logs["LogDriver"] == "awslogs"
    log_group = template["Resources"][logs["Options"]["awslogs-group"]["Ref"]]["Properties"]
    assert log_group["KmsKeyId"] == imported(env, "security", "LogsKeyArn")


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_image_comes_from_this_accounts_repository_at_the_configured_release(built, env):
    settings = load_environment(env).compute.ecs
    template = built[env]
    (container,) = template["Resources"]["ApiTaskDefinition"]["Properties"]["ContainerDefinitions"]
    assert container["Image"] == {"Fn::Sub": [
        "${AWS::AccountId}.dkr.ecr.${AWS::Region}.${AWS::URLSuffix}/${Repository}:${Release}",
        {"Repository": imported(env, "artifacts", "ApiRepositoryName"), "Release": {"Ref": "ImageTag"}}]}
    assert template["Parameters"]["ImageTag"]["Default"] == settings.image
    role = template["Resources"]["TaskExecutionRole"]
    by_sid = {s["Sid"]: s for s in statements(role)}
    assert by_sid["PullImage"]["Resource"] == [imported(env, "artifacts", "ApiRepositoryArn")]
    assert "ReadDbSecret" not in by_sid


def test_an_image_digest_is_pinned_with_an_at_sign(tmp_path):
    config = load_environment("staging")
    digest = "sha256:" + "ab" * 32
    ecs = config.compute.ecs.model_copy(update={"image": digest})
    config = config.model_copy(update={"compute": config.compute.model_copy(update={"ecs": ecs})})
    template = json.loads(compute.build(config).to_json())
    (container,) = template["Resources"]["ApiTaskDefinition"]["Properties"]["ContainerDefinitions"]
    assert container["Image"]["Fn::Sub"][0].endswith("/${Repository}@${Release}")
    assert container["Image"]["Fn::Sub"][1]["Release"] == {"Ref": "ImageDigest"}
    assert template["Parameters"]["ImageDigest"]["Default"] == digest


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_service_is_private_and_rolls_with_the_circuit_breaker(built, env):
    template = built[env]
    service = template["Resources"]["ApiService"]["Properties"]
    network = service["NetworkConfiguration"]["AwsvpcConfiguration"]
    assert network["AssignPublicIp"] == "DISABLED"
    assert network["Subnets"] == {"Fn::Split": [",", imported(env, "network", "PrivateSubnetIds")]}
    assert network["SecurityGroups"] == [imported(env, "network", "AppSecurityGroupId")]
    (balancer,) = service["LoadBalancers"]
    assert balancer == {"ContainerName": "payment-api", "ContainerPort": load_environment(env).compute.ecs.container_port,
                        "TargetGroupArn": {"Ref": "ApiTargetGroup"}}
    # rolling: no listener rule that ECS re-weights behind CloudFormation's back
    assert service["DeploymentController"] == {"Type": "ECS"}
    assert "Strategy" not in service["DeploymentConfiguration"]
    assert service["DeploymentConfiguration"]["DeploymentCircuitBreaker"] == {"Enable": True, "Rollback": True}
    assert service["DeploymentConfiguration"]["MinimumHealthyPercent"] == 100
    assert not resources_of(template, "AWS::ElasticLoadBalancingV2::ListenerRule")
    # DesiredCount on the first create only: afterwards auto scaling owns it
    assert service["DesiredCount"] == {"Fn::If": ["StackEstablished", {"Ref": "AWS::NoValue"},
                                                  load_environment(env).compute.ecs.min_tasks]}
    assert "ServiceName" not in service
    cluster = template["Resources"]["Cluster"]["Properties"]
    assert cluster["ClusterSettings"] == [{"Name": "containerInsights", "Value": "enhanced"}]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_alb_terminates_tls_and_redirects_http(built, env):
    config = load_environment(env)
    template = built[env]
    alb = template["Resources"]["LoadBalancer"]["Properties"]
    assert alb["Scheme"] == "internet-facing"
    assert "Name" not in alb
    assert alb["Subnets"] == {"Fn::Split": [",", imported(env, "network", "PublicSubnetIds")]}
    attributes = {a["Key"]: a["Value"] for a in alb["LoadBalancerAttributes"]}
    assert attributes["routing.http.drop_invalid_header_fields.enabled"] == "true"
    protection = {"Fn::If": ["StackEstablished", "true", "false"]} if config.retains_data else "false"
    assert attributes["deletion_protection.enabled"] == protection
    listeners = {lst["Properties"]["Port"]: lst["Properties"] for lst in resources_of(template, "AWS::ElasticLoadBalancingV2::Listener").values()}
    assert listeners[443]["SslPolicy"] == "ELBSecurityPolicy-TLS13-1-2-2021-06"
    assert listeners[443]["DefaultActions"] == [{"Type": "forward", "TargetGroupArn": {"Ref": "ApiTargetGroup"}}]
    if config.compute.http_redirect:  # dev only: staging and prod have no port 80 at all (PCI DSS 4.2)
        (redirect,) = listeners[80]["DefaultActions"]
        assert redirect["Type"] == "redirect"
        assert redirect["RedirectConfig"] == {"Protocol": "HTTPS", "Port": "443", "StatusCode": "HTTP_301"}
    else:
        assert set(listeners) == {443}
    group = template["Resources"]["ApiTargetGroup"]["Properties"]
    assert (group["TargetType"], group["HealthCheckPath"]) == ("ip", "/health")
    assert group["Port"] == config.compute.ecs.container_port
    assert "Name" not in group  # a port change replaces the group: a fixed name would make it fail


def test_created_certificate_is_validated_by_dns_in_the_configured_zone(built):
    config = load_environment("staging")
    template = built["staging"]
    certificate = template["Resources"]["ApiCertificate"]["Properties"]
    assert certificate["DomainName"] == config.compute.certificate.domain_name
    assert certificate["ValidationMethod"] == "DNS"
    assert certificate["DomainValidationOptions"] == [
        {"DomainName": config.compute.certificate.domain_name, "HostedZoneId": config.compute.certificate.hosted_zone_id}]
    (https,) = [lst for lst in resources_of(template, "AWS::ElasticLoadBalancingV2::Listener").values()
                if lst["Properties"]["Port"] == 443]
    assert https["Properties"]["Certificates"] == [{"CertificateArn": {"Ref": "ApiCertificate"}}]


def test_existing_certificate_is_named_by_id_in_this_stacks_account_and_region():
    config = load_environment("local")
    template = json.loads(compute.build(config).to_json())
    assert not resources_of(template, "AWS::CertificateManager::Certificate")
    (https,) = [lst for lst in resources_of(template, "AWS::ElasticLoadBalancingV2::Listener").values()
                if lst["Properties"]["Port"] == 443]
    certificate_id = config.compute.certificate.certificate_id
    assert https["Properties"]["Certificates"] == [{"CertificateArn": {"Fn::Sub":
        f"arn:${{AWS::Partition}}:acm:${{AWS::Region}}:${{AWS::AccountId}}:certificate/{certificate_id}"}}]
    assert config.account_id not in json.dumps(template)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_alb_writes_access_logs_to_the_storage_access_log_bucket(built, env):
    """The import of the bucket name orders compute after storage, whose bucket policy admits ELB."""
    template = built[env]
    load_balancer = template["Resources"]["LoadBalancer"]
    attributes = {a["Key"]: a["Value"] for a in load_balancer["Properties"]["LoadBalancerAttributes"]}
    access_logs = {key: value for key, value in attributes.items() if key.startswith("access_logs.")}
    assert access_logs == {
        "access_logs.s3.enabled": "true",
        "access_logs.s3.bucket": imported(env, "storage", "AccessLogBucketName"),
        "access_logs.s3.prefix": "alb",  # the prefix the storage bucket policy admits
    }
    skipped = {skip["id"] for skip in load_balancer.get("Metadata", {}).get("checkov", {}).get("skip", [])}
    assert "CKV_AWS_91" not in skipped


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_auto_scaling_follows_the_environment(built, env):
    settings = load_environment(env).compute.ecs
    template = built[env]
    target = template["Resources"]["ApiScalableTarget"]["Properties"]
    assert (target["MinCapacity"], target["MaxCapacity"]) == (settings.min_tasks, settings.max_tasks)
    policies = {
        p["Properties"]["TargetTrackingScalingPolicyConfiguration"]["PredefinedMetricSpecification"]["PredefinedMetricType"]:
        p["Properties"]["TargetTrackingScalingPolicyConfiguration"]["TargetValue"]
        for p in resources_of(template, "AWS::ApplicationAutoScaling::ScalingPolicy").values()
    }
    assert policies == {
        "ECSServiceAverageCPUUtilization": settings.cpu_target_percent,
        "ECSServiceAverageMemoryUtilization": settings.memory_target_percent,
    }


def test_a_task_size_fargate_does_not_offer_is_refused(tmp_path):
    for name in ENVIRONMENTS:
        shutil.copy(ROOT / "parameters" / f"{name}.yaml", tmp_path / f"{name}.yaml")
    dev = tmp_path / "dev.yaml"
    dev.write_text(dev.read_text().replace("memory_mb: 512", "memory_mb: 4096"))
    with pytest.raises(ConfigError, match=r"compute\.ecs: memory_mb 4096 is not a Fargate size for cpu 256"):
        load_environment("dev", tmp_path)


# --- WAF and exports --------------------------------------------------------------------------


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_web_acl_rules_logging_and_association(built, env):
    config = load_environment(env)
    template = built[env]
    acl = template["Resources"]["WebAcl"]["Properties"]
    assert acl["Scope"] == "REGIONAL"
    rules = {r["Name"]: r for r in acl["Rules"]}
    assert {"AWSManagedRulesCommonRuleSet", "AWSManagedRulesKnownBadInputsRuleSet", "AWSManagedRulesSQLiRuleSet"} < set(rules)
    assert rules["RateLimitPerIp"]["Statement"]["RateBasedStatement"]["Limit"] == config.api.waf_rate_limit_per_5min
    assert all(r["VisibilityConfig"]["CloudWatchMetricsEnabled"] for r in acl["Rules"])
    log_group = template["Resources"]["WebAclLogGroup"]["Properties"]
    assert log_group["LogGroupName"] == f"aws-waf-logs-payments-{env}"
    assert log_group["KmsKeyId"] == imported(env, "security", "LogsKeyArn")
    logging = template["Resources"]["WebAclLogging"]["Properties"]
    assert logging["LogDestinationConfigs"][0]["Fn::Sub"][1] == {"LogGroup": {"Ref": "WebAclLogGroup"}}
    association = template["Resources"]["LoadBalancerWebAcl"]["Properties"]
    assert association["ResourceArn"] == {"Ref": "LoadBalancer"}


def exports_contract() -> set[str]:
    for line in (ROOT / "docs" / "exports.md").read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 2 and cells[0] == "compute":
            # The per-function keys are described in prose (`<Fn>FunctionName` ...); the
            # fixed keys are the bare identifiers.
            return {key.strip() for key in cells[1].split(",") if re.fullmatch(r"[A-Z][A-Za-z]+", key.strip())}
    raise AssertionError("docs/exports.md has no compute row")


def test_exports_follow_the_contract(built):
    expected = exports_contract() | {
        f"{fn}{suffix}" for fn in ("PaymentApi", "QueueWorker", "BatchIngestion", "AuditLogger") for suffix in ("FunctionName", "AliasArn")
    }
    for env, template in built.items():
        outputs = template["Outputs"]
        assert set(outputs) == expected
        for key, output in outputs.items():
            assert output["Export"]["Name"] == f"payments-{env}-compute-{key}"
        assert outputs["PaymentApiAliasArn"]["Value"] == {"Ref": "PaymentApiAlias"}


def test_build_is_deterministic(catalog):
    config = load_environment("prod")
    assert compute.build(config, catalog).to_json() == compute.build(config, catalog).to_json()


# --- the real catalog -------------------------------------------------------------------------


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_real_catalog_gives_every_function_its_exports(env):
    declarations = load_functions()
    assert declarations, "functions/*/function.yaml: no function declared"
    template = json.loads(compute.build(load_environment(env)).to_json())
    for declaration in declarations:
        assert f"{declaration.logical_name}FunctionName" in template["Outputs"]
        assert f"{declaration.logical_name}AliasArn" in template["Outputs"]
        variables = template["Resources"][f"{declaration.logical_name}Function"]["Properties"]["Environment"]["Variables"]
        assert variables["ENVIRONMENT"] == env
        assert variables["POWERTOOLS_METRICS_NAMESPACE"] == "Payments"
        for key, value in declaration.environment.items():
            if not hasattr(value, "export"):
                assert variables[key] == value.value
            elif value.suffix:
                assert variables[key] == {"Fn::Join": ["", [imported(env, value.layer, value.key), value.suffix]]}
            else:
                assert variables[key] == imported(env, value.layer, value.key)
        role = template["Resources"][f"{declaration.logical_name}Role"]
        assert role["Properties"]["Policies"][0]["PolicyDocument"]["Statement"][0]["Sid"] == "OwnLogGroup"


def contract_keys() -> set[str]:
    """Every `payments-<env>-<layer>-<Key>` that docs/exports.md lets a layer import."""
    names = set()
    for line in (ROOT / "docs" / "exports.md").read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 2 and re.fullmatch(r"[a-z]+", cells[0]):
            names |= {f"{cells[0]}-{key}" for key in contract_cell_keys(cells[1])}
    return names


def imports_of(node) -> set[str]:
    if isinstance(node, dict):
        found = {node["Fn::ImportValue"]} if isinstance(node.get("Fn::ImportValue"), str) else set()
        return found.union(*(imports_of(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(imports_of(value) for value in node))
    return set()


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_imports_only_exports_the_contract_lists(env):
    template = json.loads(compute.build(load_environment(env)).to_json())
    imported_keys = {name.removeprefix(f"payments-{env}-") for name in imports_of(template["Resources"])}
    assert imported_keys and imported_keys <= contract_keys(), imported_keys - contract_keys()
    assert not any(key.startswith("compute-") for key in imported_keys)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_functions_run_on_graviton_with_the_matching_powertools_layer_and_snapstart_where_declared(built_environments, env):
    template = built_environments[env]["templates"]["compute"]
    declared = {f"{f.logical_name}Function": f.snapstart for f in load_functions()}
    for logical_id, function in resources_of(template, "AWS::Lambda::Function").items():
        if logical_id not in declared:
            continue  # the platform's own helper functions
        props = function["Properties"]
        assert props["Architectures"] == ["arm64"]
        snapstart = props.get("SnapStart")
        assert snapstart == ({"ApplyOn": "PublishedVersions"} if declared[logical_id] else None), logical_id
    assert declared["PaymentApiFunction"] is True
    assert "/arm64/" in template["Parameters"]["PowertoolsLayerArn"]["Default"]

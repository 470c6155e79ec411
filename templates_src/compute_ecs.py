"""The payment API container: ECS Fargate behind an internet-facing ALB, with auto scaling.

Design decisions:
- Blue/green without CodeDeploy. CloudFormation's CodeDeploy blue/green needs the
  AWS::CodeDeployBlueGreen transform and hook; a template using it may not declare Outputs or
  use Fn::ImportValue, and may not mix a green deployment with other resource updates. This
  layer lives on imports and exports, so that road is closed.
  ECS now does blue/green natively: deployment controller ECS with strategy BLUE_GREEN, the blue
  target group as the service's target group, the green one as AlternateTargetGroupArn, and the
  production listener rule that ECS re-weights (blue 100 / green 0 at rest). ECS shifts traffic
  through an infrastructure role (AWS managed AmazonECSInfrastructureRolePolicyForLoadBalancers,
  which holds only the ELB listener, rule and target group actions it needs). The deployment
  circuit breaker rolls a failing revision back.
- The task runs read-only with a non-root user; /tmp is a task-local volume so the application
  can still write scratch files. Database credentials come from the security layer's secret as
  ECS secrets (`<arn>:username::`), never as plain environment values.
- ALB access logs go to the storage layer's access-log bucket (SSE-S3, the only encryption ALB
  delivers to) under blocks.ALB_ACCESS_LOG_PREFIX; the storage layer's bucket policy admits ELB
  log delivery there. The bucket name is an import of storage.AccessLogBucketName: ALB creation
  fails if the bucket policy is missing, and the import is what orders compute after storage.
  The WAF log still records every request the ACL sees (KMS-encrypted log group).
"""
from __future__ import annotations

import re

import awacs.ecr as ecr_actions
import awacs.kms as kms_actions
import awacs.logs as logs_actions
import awacs.secretsmanager as secrets_actions
import awacs.sts as sts_actions
from awacs.aws import Allow, ArnLike, Condition, Policy, Principal, Statement, StringEquals
from troposphere import GetAtt, Parameter, Ref, Split, Sub, Template, applicationautoscaling as scaling
from troposphere import ecs, iam
from troposphere import elasticloadbalancingv2 as elb

from . import blocks
from .common import import_value, resource_name, tags
from .config import EnvironmentConfig

CONTAINER_NAME = "payment-api"
CONTAINER_USER = "1000:1000"  # any non-root uid: the image must not need root
HEALTH_CHECK_PATH = "/health"
TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
DEPLOYMENT_BAKE_MINUTES = 5
ECR_IMAGE = re.compile(r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(\.cn)?/(?P<repo>[^:@]+)")
LB_INFRASTRUCTURE_POLICY = "arn:${AWS::Partition}:iam::aws:policy/AmazonECSInfrastructureRolePolicyForLoadBalancers"


class Ecs:
    """What the rest of the layer (WAF, exports) needs from the ECS part."""

    def __init__(self, cluster, service, load_balancer, blue):
        self.cluster = cluster
        self.service = service
        self.load_balancer = load_balancer
        self.blue = blue


def add_ecs(template: Template, config: EnvironmentConfig) -> Ecs:
    certificate = template.add_parameter(
        Parameter(
            "CertificateArn",
            Type="String",
            Default=config.compute.certificate_arn,
            AllowedPattern=r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]{36}$",
            Description="ACM certificate of the HTTPS listener",
        )
    )
    cluster = template.add_resource(
        ecs.Cluster(
            "Cluster",
            ClusterName=resource_name(config, "cluster"),
            ClusterSettings=[ecs.ClusterSetting(Name="containerInsights", Value="enhanced")],
            Tags=tags(config, resource_name(config, "cluster")),
        )
    )
    load_balancer, blue, green, production_rule = _load_balancer(template, config, Ref(certificate))
    task_definition = _task_definition(template, config)
    service = _service(template, config, cluster, task_definition, blue, green, production_rule)
    _auto_scaling(template, config, cluster, service)
    return Ecs(cluster, service, load_balancer, blue)


def _task_roles(template: Template, config: EnvironmentConfig, log_group) -> tuple[iam.Role, iam.Role]:
    db_secret = import_value(config, "security", "DbCredentialsSecretArn")
    statements = [
        Statement(
            Sid="WriteTaskLogs",
            Effect=Allow,
            Action=[logs_actions.CreateLogStream, logs_actions.PutLogEvents],
            Resource=[GetAtt(log_group, "Arn")],
        ),
        Statement(Sid="ReadDbSecret", Effect=Allow, Action=[secrets_actions.GetSecretValue], Resource=[db_secret]),
        Statement(
            Sid="DecryptDbSecret",
            Effect=Allow,
            Action=[kms_actions.Decrypt],
            Resource=[import_value(config, "security", "SecretsKeyArn")],
        ),
    ]
    statements += _image_pull_statements(config.compute.ecs.container_image)
    execution_role = template.add_resource(
        iam.Role(
            "TaskExecutionRole",
            RoleName=resource_name(config, "api-task-execution"),
            AssumeRolePolicyDocument=_ecs_tasks_trust(),
            Policies=[iam.Policy(PolicyName="execution", PolicyDocument=Policy(Version="2012-10-17", Statement=statements))],
            Tags=tags(config, resource_name(config, "api-task-execution")),
        )
    )
    # The application's own AWS permissions. It reaches Aurora with the injected credentials
    # and needs no AWS API today; grant here, narrowly, when it does.
    task_role = template.add_resource(
        iam.Role(
            "TaskRole",
            RoleName=resource_name(config, "api-task"),
            AssumeRolePolicyDocument=_ecs_tasks_trust(),
            Tags=tags(config, resource_name(config, "api-task")),
        )
    )
    return execution_role, task_role


def _ecs_tasks_trust() -> Policy:
    return Policy(
        Version="2012-10-17",
        Statement=[
            Statement(
                Effect=Allow,
                Principal=Principal("Service", "ecs-tasks.amazonaws.com"),
                Action=[sts_actions.AssumeRole],
                # Only tasks of this account may assume it (confused-deputy guard).
                Condition=Condition(
                    [
                        StringEquals("aws:SourceAccount", Ref("AWS::AccountId")),
                        ArnLike("aws:SourceArn", Sub("arn:${AWS::Partition}:ecs:${AWS::Region}:${AWS::AccountId}:*")),
                    ]
                ),
            )
        ],
    )


def _image_pull_statements(image: str) -> list[Statement]:
    """ECR pulls need the registry token plus layer reads on the one repository. Images from
    another registry need neither."""
    match = ECR_IMAGE.match(image)
    if not match:
        return []
    repository = Sub(
        f"arn:${{AWS::Partition}}:ecr:{match['region']}:{match['account']}:repository/{match['repo']}"
    )
    return [
        Statement(
            Sid="EcrToken",
            Effect=Allow,
            Action=[ecr_actions.GetAuthorizationToken],
            # GetAuthorizationToken is account-wide: it has no resource-level permissions.
            Resource=["*"],
        ),
        Statement(
            Sid="PullImage",
            Effect=Allow,
            Action=[ecr_actions.BatchCheckLayerAvailability, ecr_actions.BatchGetImage, ecr_actions.GetDownloadUrlForLayer],
            Resource=[repository],
        ),
    ]


def _task_definition(template: Template, config: EnvironmentConfig) -> ecs.TaskDefinition:
    settings = config.compute.ecs
    log_group = blocks.log_group(
        template,
        config,
        "ApiTaskLogGroup",
        f"/ecs/{resource_name(config, CONTAINER_NAME)}",
        import_value(config, "security", "LogsKeyArn"),
    )
    execution_role, task_role = _task_roles(template, config, log_group)
    db_secret = import_value(config, "security", "DbCredentialsSecretArn")
    container = ecs.ContainerDefinition(
        Name=CONTAINER_NAME,
        Image=settings.container_image,
        Essential=True,
        User=CONTAINER_USER,
        ReadonlyRootFilesystem=True,
        PortMappings=[ecs.PortMapping(ContainerPort=settings.container_port, Protocol="tcp")],
        MountPoints=[ecs.MountPoint(SourceVolume="tmp", ContainerPath="/tmp", ReadOnly=False)],
        Environment=[
            ecs.Environment(Name="ENVIRONMENT", Value=config.name),
            ecs.Environment(Name="PORT", Value=str(settings.container_port)),
            ecs.Environment(Name="DB_HOST", Value=import_value(config, "data", "DbClusterEndpoint")),
            ecs.Environment(Name="DB_PORT", Value=import_value(config, "data", "DbPort")),
        ],
        Secrets=[
            ecs.Secret(Name="DB_USERNAME", ValueFrom=Sub("${Secret}:username::", Secret=db_secret)),
            ecs.Secret(Name="DB_PASSWORD", ValueFrom=Sub("${Secret}:password::", Secret=db_secret)),
        ],
        LogConfiguration=ecs.LogConfiguration(
            LogDriver="awslogs",
            Options={
                "awslogs-group": Ref(log_group),
                "awslogs-region": Ref("AWS::Region"),
                "awslogs-stream-prefix": CONTAINER_NAME,
            },
        ),
    )
    return template.add_resource(
        ecs.TaskDefinition(
            "ApiTaskDefinition",
            Family=resource_name(config, CONTAINER_NAME),
            Cpu=str(settings.cpu),
            Memory=str(settings.memory_mb),
            NetworkMode="awsvpc",
            RequiresCompatibilities=["FARGATE"],
            RuntimePlatform=ecs.RuntimePlatform(OperatingSystemFamily="LINUX", CpuArchitecture="X86_64"),
            ExecutionRoleArn=GetAtt(execution_role, "Arn"),
            TaskRoleArn=GetAtt(task_role, "Arn"),
            Volumes=[ecs.Volume(Name="tmp")],
            ContainerDefinitions=[container],
            Tags=tags(config, resource_name(config, CONTAINER_NAME)),
        )
    )


def _target_group(config: EnvironmentConfig, logical_id: str, colour: str) -> elb.TargetGroup:
    # HTTP behind the ALB: TLS ends at the listener, and ALB-to-task traffic stays inside the
    # VPC between the ALB and app security groups.
    group = elb.TargetGroup(
        logical_id,
        Name=resource_name(config, colour),
        VpcId=import_value(config, "network", "VpcId"),
        TargetType="ip",
        Protocol="HTTP",
        Port=config.compute.ecs.container_port,
        HealthCheckEnabled=True,
        HealthCheckPath=HEALTH_CHECK_PATH,
        HealthCheckPort="traffic-port",
        HealthCheckProtocol="HTTP",
        HealthyThresholdCount=2,
        UnhealthyThresholdCount=3,
        Matcher=elb.Matcher(HttpCode="200"),
        TargetGroupAttributes=[elb.TargetGroupAttribute(Key="deregistration_delay.timeout_seconds", Value="30")],
        Tags=tags(config, resource_name(config, colour)),
    )
    return group


def _access_log_attributes(config: EnvironmentConfig) -> list[elb.LoadBalancerAttributes]:
    return [
        elb.LoadBalancerAttributes(Key="access_logs.s3.enabled", Value="true"),
        elb.LoadBalancerAttributes(
            Key="access_logs.s3.bucket", Value=import_value(config, "storage", "AccessLogBucketName")
        ),
        elb.LoadBalancerAttributes(Key="access_logs.s3.prefix", Value=blocks.ALB_ACCESS_LOG_PREFIX),
    ]


def _load_balancer(template: Template, config: EnvironmentConfig, certificate):
    load_balancer = template.add_resource(
        elb.LoadBalancer(
            "LoadBalancer",
            Name=resource_name(config, "api"),
            Type="application",
            Scheme="internet-facing",
            Subnets=Split(",", import_value(config, "network", "PublicSubnetIds")),
            SecurityGroups=[import_value(config, "network", "AlbSecurityGroupId")],
            LoadBalancerAttributes=[
                elb.LoadBalancerAttributes(Key="routing.http.drop_invalid_header_fields.enabled", Value="true"),
                elb.LoadBalancerAttributes(
                    Key="deletion_protection.enabled", Value=str(config.retains_data).lower()
                ),
                *_access_log_attributes(config),
            ],
            Tags=tags(config, resource_name(config, "api")),
        )
    )
    blue = template.add_resource(_target_group(config, "BlueTargetGroup", "blue"))
    green = template.add_resource(_target_group(config, "GreenTargetGroup", "green"))
    https = template.add_resource(
        elb.Listener(
            "HttpsListener",
            LoadBalancerArn=Ref(load_balancer),
            Port=443,
            Protocol="HTTPS",
            SslPolicy=TLS_POLICY,
            Certificates=[elb.Certificate(CertificateArn=certificate)],
            Tags=tags(config, resource_name(config, "https-listener")),
            # Anything not matched by the production rule is not ours to answer.
            DefaultActions=[
                elb.Action(
                    Type="fixed-response",
                    FixedResponseConfig=elb.FixedResponseConfig(StatusCode="404", ContentType="text/plain"),
                )
            ],
        )
    )
    template.add_resource(
        elb.Listener(
            "HttpListener",
            LoadBalancerArn=Ref(load_balancer),
            Port=80,
            Protocol="HTTP",
            Tags=tags(config, resource_name(config, "http-redirect-listener")),
            DefaultActions=[
                elb.Action(
                    Type="redirect",
                    RedirectConfig=elb.RedirectConfig(Protocol="HTTPS", Port="443", StatusCode="HTTP_301"),
                )
            ],
        )
    )
    production_rule = template.add_resource(
        elb.ListenerRule(
            "ProductionListenerRule",
            ListenerArn=Ref(https),
            Priority=1,
            Tags=tags(config, resource_name(config, "production-rule")),
            Conditions=[elb.Condition(Field="path-pattern", PathPatternConfig=elb.PathPatternConfig(Values=["/*"]))],
            # ECS re-weights this rule during a blue/green deployment; at rest blue serves all.
            Actions=[
                elb.ListenerRuleAction(
                    Type="forward",
                    ForwardConfig=elb.ForwardConfig(
                        TargetGroups=[
                            elb.TargetGroupTuple(TargetGroupArn=Ref(blue), Weight=100),
                            elb.TargetGroupTuple(TargetGroupArn=Ref(green), Weight=0),
                        ]
                    ),
                )
            ],
        )
    )
    return load_balancer, blue, green, production_rule


def _service(template, config, cluster, task_definition, blue, green, production_rule) -> ecs.Service:
    traffic_role = template.add_resource(
        iam.Role(
            "BlueGreenTrafficRole",
            RoleName=resource_name(config, "api-blue-green"),
            AssumeRolePolicyDocument=Policy(
                Version="2012-10-17",
                Statement=[
                    Statement(
                        Effect=Allow,
                        Principal=Principal("Service", "ecs.amazonaws.com"),
                        Action=[sts_actions.AssumeRole],
                        Condition=Condition(StringEquals("aws:SourceAccount", Ref("AWS::AccountId"))),
                    )
                ],
            ),
            ManagedPolicyArns=[Sub(LB_INFRASTRUCTURE_POLICY)],
            Tags=tags(config, resource_name(config, "api-blue-green")),
        )
    )
    settings = config.compute.ecs
    return template.add_resource(
        ecs.Service(
            "ApiService",
            ServiceName=resource_name(config, CONTAINER_NAME),
            Cluster=Ref(cluster),
            TaskDefinition=Ref(task_definition),
            LaunchType="FARGATE",
            DesiredCount=settings.min_tasks,
            HealthCheckGracePeriodSeconds=60,
            NetworkConfiguration=ecs.NetworkConfiguration(
                AwsvpcConfiguration=ecs.AwsvpcConfiguration(
                    AssignPublicIp="DISABLED",
                    Subnets=Split(",", import_value(config, "network", "PrivateSubnetIds")),
                    SecurityGroups=[import_value(config, "network", "AppSecurityGroupId")],
                )
            ),
            LoadBalancers=[
                ecs.LoadBalancer(
                    ContainerName=CONTAINER_NAME,
                    ContainerPort=settings.container_port,
                    TargetGroupArn=Ref(blue),
                    AdvancedConfiguration=ecs.AdvancedConfiguration(
                        AlternateTargetGroupArn=Ref(green),
                        ProductionListenerRule=Ref(production_rule),
                        RoleArn=GetAtt(traffic_role, "Arn"),
                    ),
                )
            ],
            DeploymentController=ecs.DeploymentController(Type="ECS"),
            DeploymentConfiguration=ecs.DeploymentConfiguration(
                Strategy="BLUE_GREEN",
                BakeTimeInMinutes=DEPLOYMENT_BAKE_MINUTES,
                MinimumHealthyPercent=100,
                MaximumPercent=200,
                DeploymentCircuitBreaker=ecs.DeploymentCircuitBreaker(Enable=True, Rollback=True),
            ),
            PropagateTags="SERVICE",
            EnableECSManagedTags=True,
            Tags=tags(config, resource_name(config, CONTAINER_NAME)),
        )
    )


def _auto_scaling(template: Template, config: EnvironmentConfig, cluster, service) -> None:
    settings = config.compute.ecs
    target = template.add_resource(
        scaling.ScalableTarget(
            "ApiScalableTarget",
            ServiceNamespace="ecs",
            ScalableDimension="ecs:service:DesiredCount",
            ResourceId=Sub("service/${Cluster}/${Service}", Cluster=Ref(cluster), Service=GetAtt(service, "Name")),
            MinCapacity=settings.min_tasks,
            MaxCapacity=settings.max_tasks,
            Tags=tags(config, resource_name(config, "api-scaling")),
        )
    )
    for metric, value in (
        ("ECSServiceAverageCPUUtilization", settings.cpu_target_percent),
        ("ECSServiceAverageMemoryUtilization", settings.memory_target_percent),
    ):
        short = "Cpu" if "CPU" in metric else "Memory"
        template.add_resource(
            scaling.ScalingPolicy(
                f"Api{short}ScalingPolicy",
                PolicyName=resource_name(config, "api", short.lower()),
                PolicyType="TargetTrackingScaling",
                ScalingTargetId=Ref(target),
                TargetTrackingScalingPolicyConfiguration=scaling.TargetTrackingScalingPolicyConfiguration(
                    TargetValue=float(value),
                    PredefinedMetricSpecification=scaling.PredefinedMetricSpecification(PredefinedMetricType=metric),
                    ScaleInCooldown=120,
                    ScaleOutCooldown=60,
                ),
            )
        )

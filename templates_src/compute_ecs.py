"""The payment API container: ECS Fargate behind an internet-facing ALB, with auto scaling.

Design decisions:
- Rolling deployments with the deployment circuit breaker (rollback on), not ECS blue/green.
  Native blue/green makes ECS rewrite the production listener rule's weights during a
  deployment; the template holds those weights too, so a later template change to the rule would
  write 100/0 back and could send traffic to an empty target group, and drift-reverting change
  sets would "fix" what ECS set. With rolling deployments there is one target group and nothing
  that ECS and CloudFormation both own: MinimumHealthyPercent 100 keeps full capacity while new
  tasks start, and the circuit breaker rolls a revision back when its tasks do not get healthy.
  deploy.py never creates change sets in drift-reverting mode.
- The image is `<this account>.dkr.ecr.<this region>.<suffix>/payments-<env>-api` (the artifacts
  stack's repository) at the tag or digest of `ecs.image`, a template parameter so a release is a
  parameter change the review names. The deploy stops before compute while the image is missing.
- The certificate: an existing one is named by id and the stack's own partition, region and
  account; otherwise the stack requests one for the configured domain with DNS validation in the
  configured hosted zone (CloudFormation writes the validation record and waits for ISSUED).
- DesiredCount is set on the first create only (StackLifecycle creating): for an existing
  service an omitted DesiredCount leaves the count alone, so updates never reset what
  Application Auto Scaling scaled out to.
- ALB deletion protection is switched on once the stack is established (see common.py), so the
  rollback of a failed first create can still delete the load balancer.
- The database is reached with IAM authentication: the task role may `rds-db:connect` as
  DB_APP_USER and the application asks for a token per connection (tokens last 15 minutes). No
  password is injected into the task, so rotating the master secret never breaks running tasks.
- HTTPS only on 443. Port 80 (a redirect to HTTPS) exists only where `compute.http_redirect` is
  set (dev): an API client is a program, and one misconfigured to call http:// sends the card
  number in clear before it ever sees the redirect (PCI DSS 4.2).
- No custom names on the target group, the load balancer or the service: a change that needs a
  replacement (container port, health check protocol) would otherwise fail on the name clash.
- The task runs read-only with a non-root user; /tmp is a task-local volume so the application
  can still write scratch files.
- ALB access logs go to the storage layer's access-log bucket (SSE-S3, the only encryption ALB
  delivers to) under blocks.ALB_ACCESS_LOG_PREFIX; the storage layer's bucket policy admits ELB
  log delivery there. The bucket name is an import of storage.AccessLogBucketName: ALB creation
  fails if the bucket policy is missing, and the import is what orders compute after storage.
  The WAF log still records every request the ACL sees (KMS-encrypted log group).
"""
from __future__ import annotations

import awacs.ecr as ecr_actions
import awacs.logs as logs_actions
from awacs.aws import Action, Allow, Policy, Statement
from troposphere import GetAtt, If, Parameter, Ref, Split, Sub, Template, certificatemanager, ecs, iam
from troposphere import applicationautoscaling as scaling
from troposphere import elasticloadbalancingv2 as elb

from . import blocks
from .common import deletion_protection, import_value, lifecycle_condition, resource_name, tags
from .config import CertificateMode, EnvironmentConfig
from .data import DATABASE_NAME, DB_APP_USER

CONTAINER_NAME = "payment-api"
CONTAINER_USER = "1000:1000"  # any non-root uid: the image must not need root
HEALTH_CHECK_PATH = "/health"
TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
IMAGE_URI = "${AWS::AccountId}.dkr.ecr.${AWS::Region}.${AWS::URLSuffix}/${Repository}"
IMAGE_PARAMETERS = {False: ("ImageTag", ":"), True: ("ImageDigest", "@")}  # by image_is_digest


class Ecs:
    """What the rest of the layer (WAF, exports) needs from the ECS part."""

    def __init__(self, cluster, service, load_balancer, target_group):
        self.cluster = cluster
        self.service = service
        self.load_balancer = load_balancer
        self.target_group = target_group


def add_ecs(template: Template, config: EnvironmentConfig) -> Ecs:
    cluster = template.add_resource(
        ecs.Cluster(
            "Cluster",
            ClusterName=resource_name(config, "cluster"),
            ClusterSettings=[ecs.ClusterSetting(Name="containerInsights", Value="enhanced")],
            Tags=tags(config, resource_name(config, "cluster")),
        )
    )
    load_balancer, target_group, https = _load_balancer(template, config, _certificate(template, config))
    task_definition = _task_definition(template, config)
    service = _service(template, config, cluster, task_definition, target_group, https)
    _auto_scaling(template, config, cluster, service)
    return Ecs(cluster, service, load_balancer, target_group)


def _certificate(template: Template, config: EnvironmentConfig):
    """The listener's certificate ARN: an existing certificate by id in this stack's own
    partition, region and account, or one this stack requests and validates by DNS."""
    certificate = config.compute.certificate
    if certificate.mode is CertificateMode.EXISTING:
        return Sub(f"arn:${{AWS::Partition}}:acm:${{AWS::Region}}:${{AWS::AccountId}}:certificate/{certificate.certificate_id}")
    requested = template.add_resource(
        certificatemanager.Certificate(
            "ApiCertificate",
            DomainName=certificate.domain_name,
            ValidationMethod="DNS",
            DomainValidationOptions=[
                certificatemanager.DomainValidationOption(
                    DomainName=certificate.domain_name, HostedZoneId=certificate.hosted_zone_id
                )
            ],
            Tags=tags(config, certificate.domain_name),
        )
    )
    return Ref(requested)


def _task_roles(template: Template, config: EnvironmentConfig, log_group) -> tuple[iam.Role, iam.Role]:
    statements = [
        Statement(
            Sid="WriteTaskLogs",
            Effect=Allow,
            Action=[logs_actions.CreateLogStream, logs_actions.PutLogEvents],
            Resource=[GetAtt(log_group, "Arn")],
        ),
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
            Resource=[import_value(config, "artifacts", "ApiRepositoryArn")],
        ),
    ]
    execution_role = template.add_resource(
        iam.Role(
            "TaskExecutionRole",
            RoleName=resource_name(config, "api-task-execution"),
            AssumeRolePolicyDocument=_ecs_tasks_trust(),
            Policies=[iam.Policy(PolicyName="execution", PolicyDocument=Policy(Version="2012-10-17", Statement=statements))],
            Tags=tags(config, resource_name(config, "api-task-execution")),
        )
    )
    # The application's own AWS permissions: an IAM authentication token for its database user,
    # nothing else. Grant here, narrowly, when it needs more.
    connect = Statement(
        Sid="ConnectToDatabaseAsAppUser",
        Effect=Allow,
        Action=[Action("rds-db", "connect")],
        Resource=[
            Sub(
                f"arn:${{AWS::Partition}}:rds-db:${{AWS::Region}}:${{AWS::AccountId}}:dbuser:${{ClusterResourceId}}/{DB_APP_USER}",
                ClusterResourceId=import_value(config, "data", "DbClusterResourceId"),
            )
        ],
    )
    task_role = template.add_resource(
        iam.Role(
            "TaskRole",
            RoleName=resource_name(config, "api-task"),
            AssumeRolePolicyDocument=_ecs_tasks_trust(),
            Policies=[iam.Policy(PolicyName="database", PolicyDocument=Policy(Version="2012-10-17", Statement=[connect]))],
            Tags=tags(config, resource_name(config, "api-task")),
        )
    )
    return execution_role, task_role


def _ecs_tasks_trust() -> Policy:
    # Only tasks of this account may assume it (confused-deputy guard).
    return blocks.service_trust("ecs-tasks.amazonaws.com", Sub("arn:${AWS::Partition}:ecs:${AWS::Region}:${AWS::AccountId}:*"))


def _image(template: Template, config: EnvironmentConfig) -> Sub:
    """The image URI in this account's and region's repository, at the configured tag or digest."""
    settings = config.compute.ecs
    name, separator = IMAGE_PARAMETERS[settings.image_is_digest]
    parameter = template.add_parameter(
        Parameter(
            name,
            Type="String",
            Default=settings.image,
            AllowedPattern=r"^sha256:[0-9a-f]{64}$" if settings.image_is_digest else r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$",
            Description="Release of the payment API image in this environment's ECR repository (compute.ecs.image)",
        )
    )
    return Sub(
        f"{IMAGE_URI}{separator}${{Release}}",
        Repository=import_value(config, "artifacts", "ApiRepositoryName"),
        Release=Ref(parameter),
    )


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
    container = ecs.ContainerDefinition(
        Name=CONTAINER_NAME,
        Image=_image(template, config),
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
            ecs.Environment(Name="DB_NAME", Value=DATABASE_NAME),
            ecs.Environment(Name="DB_USER", Value=DB_APP_USER),
            # The application generates an IAM authentication token per connection (RDS
            # GenerateDBAuthToken, valid 15 minutes) and connects over TLS.
            ecs.Environment(Name="DB_AUTH", Value="iam"),
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


def _target_group(config: EnvironmentConfig) -> elb.TargetGroup:
    # HTTP behind the ALB: TLS ends at the listener, and ALB-to-task traffic stays inside the
    # VPC between the ALB and app security groups.
    return elb.TargetGroup(
        "ApiTargetGroup",
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
        Tags=tags(config, resource_name(config, "api")),
    )


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
            Type="application",
            Scheme="internet-facing",
            Subnets=Split(",", import_value(config, "network", "PublicSubnetIds")),
            SecurityGroups=[import_value(config, "network", "AlbSecurityGroupId")],
            LoadBalancerAttributes=[
                elb.LoadBalancerAttributes(Key="routing.http.drop_invalid_header_fields.enabled", Value="true"),
                elb.LoadBalancerAttributes(
                    Key="deletion_protection.enabled", Value=deletion_protection(template, config)
                ),
                *_access_log_attributes(config),
            ],
            Tags=tags(config, resource_name(config, "api")),
        )
    )
    target_group = template.add_resource(_target_group(config))
    https = template.add_resource(
        elb.Listener(
            "HttpsListener",
            LoadBalancerArn=Ref(load_balancer),
            Port=443,
            Protocol="HTTPS",
            SslPolicy=TLS_POLICY,
            Certificates=[elb.Certificate(CertificateArn=certificate)],
            Tags=tags(config, resource_name(config, "https-listener")),
            DefaultActions=[elb.Action(Type="forward", TargetGroupArn=Ref(target_group))],
        )
    )
    if config.compute.http_redirect:
        _http_redirect(template, config, load_balancer)
    return load_balancer, target_group, https


def _http_redirect(template: Template, config: EnvironmentConfig, load_balancer) -> None:
    """dev only (compute.http_redirect): staging and prod have no port 80 at all, since a client
    calling http:// has sent its card number in clear before it sees the redirect."""
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


def _service(template, config, cluster, task_definition, target_group, https) -> ecs.Service:
    settings = config.compute.ecs
    return template.add_resource(
        ecs.Service(
            "ApiService",
            # The target group must be attached to a listener before a service may use it.
            DependsOn=[https.title],
            Cluster=Ref(cluster),
            TaskDefinition=Ref(task_definition),
            LaunchType="FARGATE",
            # Only on the first create: afterwards Application Auto Scaling owns the count.
            DesiredCount=If(lifecycle_condition(template), Ref("AWS::NoValue"), settings.min_tasks),
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
                    TargetGroupArn=Ref(target_group),
                )
            ],
            DeploymentController=ecs.DeploymentController(Type="ECS"),
            DeploymentConfiguration=ecs.DeploymentConfiguration(
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

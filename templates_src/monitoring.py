"""monitoring layer: one dashboard and the alarms, every threshold from the environment.

Design decisions:
- The dashboard body is one JSON string built with `json.dumps(sort_keys=True)` and wrapped in
  Fn::Sub, whose variables are the imported names (API, functions, tables, queues, ALB, ECS,
  Aurora): deterministic bytes, and the names resolve at deploy time.
- Business metrics come from the functions through Powertools Metrics (embedded metric format,
  `functions/paylib/observability.py`): namespace `Payments`, metrics PaymentsAccepted /
  PaymentsDeclined / PaymentsSettled (Count) and ProcessingTime (Milliseconds). Dimension set:
  `service=payments` (POWERTOOLS_SERVICE_NAME) and no Powertools default dimensions: each
  environment is its own account, so an `environment` dimension would add nothing but cost.
  A CloudWatch metric is identified by its exact dimension set, so the dashboard uses exactly
  `business_dimensions()`; a test serialises a metric through paylib and compares.
- Lambda errors and throttles are one metric-math alarm each (the sum over every declared
  function) rather than one per function: one page per symptom, and few enough alarms to serve
  as CloudFormation rollback triggers (at most 5 per stack). The dashboard still shows each
  function. CloudWatch allows 10 metrics per metric-math alarm; more functions stop the build.
- TreatMissingData: `notBreaching` for counts and latencies (no traffic is not an incident),
  `missing` for utilisation (CPU), where silence keeps the previous state.
- Alarm ARNs are plain outputs `<Name>AlarmArn` (not exports: nothing imports them, and an
  export would pin them). Template metadata `RollbackTriggers` names, per traffic-serving layer,
  the outputs deploy attaches as rollback triggers.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from troposphere import GetAtt, Sub, Template, cloudwatch

from .common import CONFIRMED_SUBSCRIPTIONS_METRIC, OPERATIONS_NAMESPACE, import_value, new_template, output, resource_name, tags
from .config import EnvironmentConfig
from .function_catalog import FUNCTIONS_DIR, DeclarationError, FunctionDeclaration, load_functions

LAYER = "monitoring"
BUSINESS_NAMESPACE = "Payments"
BUSINESS_SERVICE = "payments"
MAX_METRICS_PER_MATH_ALARM = 10
TABLES = ("Transactions", "Idempotency", "Velocity", "BatchStatus")
FIVE_MINUTES = 300
HOUR = 3600
WIDGET_WIDTH = 12
WIDGET_HEIGHT = 6
# Rollback triggers deploy attaches to each traffic-serving stack (output keys, at most 5).
ROLLBACK_TRIGGERS = {
    "api": ["Api5xxAlarmArn", "ApiLatencyP99AlarmArn"],
    "compute": ["LambdaErrorsAlarmArn", "LambdaThrottlesAlarmArn", "Alb5xxAlarmArn", "AlbLatencyP99AlarmArn"],
}


class MonitoringError(DeclarationError):
    """The declared functions cannot be monitored as designed (reported by the build as bad input)."""


def business_dimensions(config: EnvironmentConfig) -> dict[str, str]:
    """The exact dimension set the functions publish business metrics with (the same in every
    environment; `config` stays a parameter so a per-environment dimension is a local change)."""
    return {"service": BUSINESS_SERVICE}


# --- imported names, as Fn::Sub variables ------------------------------------------------------


def _function_variable(function: FunctionDeclaration) -> str:
    return f"{function.logical_name}FunctionName"


def sub_variables(config: EnvironmentConfig, functions: list[FunctionDeclaration]) -> dict:
    """Variable name -> Fn::ImportValue for every name the dashboard and alarms use."""
    imports = {
        "ApiName": ("api", "RestApiName"),
        "ApiStage": ("api", "StageName"),
        "AlbFullName": ("compute", "AlbFullName"),
        "EcsClusterName": ("compute", "EcsClusterName"),
        "EcsServiceName": ("compute", "EcsServiceName"),
        "DbClusterIdentifier": ("data", "DbClusterIdentifier"),
        "QueueName": ("messaging", "PaymentQueueName"),
        "DlqName": ("messaging", "PaymentDlqName"),
        "AlarmDlqName": ("messaging", "AlarmDlqName"),
        "AlarmTopicName": ("messaging", "AlarmTopicName"),
    }
    imports.update({f"{table}TableName": ("data", f"{table}TableName") for table in TABLES})
    imports.update({_function_variable(f): ("compute", f"{f.logical_name}FunctionName") for f in functions})
    return {name: import_value(config, layer, key) for name, (layer, key) in sorted(imports.items())}


# --- dashboard ---------------------------------------------------------------------------------


def _ref(variable: str) -> str:
    return "${%s}" % variable


def _widget(title: str, metrics: list, stat: str = "Sum", **properties) -> dict:
    return {
        "type": "metric",
        "properties": {
            "title": title,
            "region": "${AWS::Region}",
            "view": "timeSeries",
            "stacked": False,
            "period": FIVE_MINUTES,
            "stat": stat,
            "metrics": metrics,
            **properties,
        },
    }


def _api_widgets() -> list[dict]:
    api = ["ApiName", _ref("ApiName"), "Stage", _ref("ApiStage")]
    return [
        _widget(
            "API latency (ms)",
            [
                ["AWS/ApiGateway", "Latency", *api, {"stat": "p50", "label": "p50"}],
                ["AWS/ApiGateway", "Latency", *api, {"stat": "p99", "label": "p99"}],
                ["AWS/ApiGateway", "IntegrationLatency", *api, {"stat": "p99", "label": "integration p99"}],
            ],
            stat="p99",
        ),
        _widget(
            "API requests and errors",
            [
                ["AWS/ApiGateway", "Count", *api, {"label": "requests"}],
                ["AWS/ApiGateway", "4XXError", *api, {"label": "4xx"}],
                ["AWS/ApiGateway", "5XXError", *api, {"label": "5xx"}],
            ],
        ),
    ]


def _lambda_widgets(functions: list[FunctionDeclaration]) -> list[dict]:
    def per_function(metric: str, stat: str) -> list:
        return [
            ["AWS/Lambda", metric, "FunctionName", _ref(_function_variable(f)), {"stat": stat, "label": f.name}]
            for f in functions
        ]

    return [
        _widget("Lambda invocations", per_function("Invocations", "Sum")),
        _widget("Lambda errors", per_function("Errors", "Sum")),
        _widget("Lambda duration p99 (ms)", per_function("Duration", "p99"), stat="p99"),
        _widget("Lambda throttles", per_function("Throttles", "Sum")),
    ]


def _dynamodb_widgets() -> list[dict]:
    def per_table(*metrics: str) -> list:
        return [
            ["AWS/DynamoDB", metric, "TableName", _ref(f"{table}TableName"), {"label": f"{table} {metric}"}]
            for table in TABLES
            for metric in metrics
        ]

    return [
        _widget("DynamoDB consumed capacity", per_table("ConsumedReadCapacityUnits", "ConsumedWriteCapacityUnits")),
        _widget("DynamoDB throttled requests", per_table("ReadThrottleEvents", "WriteThrottleEvents")),
    ]


def _queue_widgets() -> list[dict]:
    depth = "ApproximateNumberOfMessagesVisible"
    return [
        _widget(
            "Payment queue and DLQ depth",
            [
                ["AWS/SQS", depth, "QueueName", _ref("QueueName"), {"label": "queue"}],
                ["AWS/SQS", depth, "QueueName", _ref("DlqName"), {"label": "DLQ"}],
                ["AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", _ref("QueueName"), {"label": "oldest (s)", "yAxis": "right"}],
            ],
            stat="Maximum",
        )
    ]


def _alarm_delivery_widgets() -> list[dict]:
    return [
        _widget(
            "Alarm delivery: confirmed subscriptions, undelivered notifications",
            [
                [OPERATIONS_NAMESPACE, CONFIRMED_SUBSCRIPTIONS_METRIC, "TopicName", _ref("AlarmTopicName"),
                 {"stat": "Minimum", "period": HOUR, "label": "confirmed subscriptions"}],
                ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", _ref("AlarmDlqName"),
                 {"label": "undelivered", "yAxis": "right"}],
            ],
            stat="Maximum",
        )
    ]


def _alb_and_ecs_widgets() -> list[dict]:
    alb = ["LoadBalancer", _ref("AlbFullName")]
    ecs = ["ClusterName", _ref("EcsClusterName"), "ServiceName", _ref("EcsServiceName")]
    return [
        _widget(
            "ALB requests and 5xx",
            [
                ["AWS/ApplicationELB", "RequestCount", *alb, {"label": "requests"}],
                ["AWS/ApplicationELB", "HTTPCode_ELB_5XX_Count", *alb, {"label": "ELB 5xx"}],
                ["AWS/ApplicationELB", "HTTPCode_Target_5XX_Count", *alb, {"label": "target 5xx"}],
            ],
        ),
        _widget(
            "ALB target response time (s)",
            [
                ["AWS/ApplicationELB", "TargetResponseTime", *alb, {"stat": "p50", "label": "p50"}],
                ["AWS/ApplicationELB", "TargetResponseTime", *alb, {"stat": "p99", "label": "p99"}],
            ],
            stat="p99",
        ),
        _widget(
            "ECS service CPU and memory (%)",
            [
                ["AWS/ECS", "CPUUtilization", *ecs, {"label": "CPU"}],
                ["AWS/ECS", "MemoryUtilization", *ecs, {"label": "memory"}],
            ],
            stat="Average",
        ),
    ]


def _aurora_widgets() -> list[dict]:
    cluster = ["DBClusterIdentifier", _ref("DbClusterIdentifier")]
    return [
        _widget(
            "Aurora CPU and connections",
            [
                ["AWS/RDS", "CPUUtilization", *cluster, {"label": "CPU %"}],
                ["AWS/RDS", "DatabaseConnections", *cluster, {"label": "connections", "yAxis": "right"}],
            ],
            stat="Average",
        )
    ]


def _business_widgets(config: EnvironmentConfig) -> list[dict]:
    dimensions = [part for pair in sorted(business_dimensions(config).items()) for part in pair]
    return [
        _widget(
            "Payments accepted, declined, settled",
            [
                [BUSINESS_NAMESPACE, metric, *dimensions, {"label": metric}]
                for metric in ("PaymentsAccepted", "PaymentsDeclined", "PaymentsSettled")
            ],
        ),
        _widget(
            "Payment processing time (ms)",
            [
                [BUSINESS_NAMESPACE, "ProcessingTime", *dimensions, {"stat": "p50", "label": "p50"}],
                [BUSINESS_NAMESPACE, "ProcessingTime", *dimensions, {"stat": "p99", "label": "p99"}],
            ],
            stat="p99",
        ),
    ]


def dashboard_widgets(config: EnvironmentConfig, functions: list[FunctionDeclaration]) -> list[dict]:
    """Every widget, laid out two per row in reading order."""
    widgets = [
        *_business_widgets(config),
        *_api_widgets(),
        *_lambda_widgets(functions),
        *_dynamodb_widgets(),
        *_queue_widgets(),
        *_alb_and_ecs_widgets(),
        *_aurora_widgets(),
        *_alarm_delivery_widgets(),
    ]
    for index, widget in enumerate(widgets):
        widget.update(x=(index % 2) * WIDGET_WIDTH, y=(index // 2) * WIDGET_HEIGHT, width=WIDGET_WIDTH, height=WIDGET_HEIGHT)
    return widgets


def dashboard_body(config: EnvironmentConfig, functions: list[FunctionDeclaration]) -> Sub:
    body = json.dumps({"widgets": dashboard_widgets(config, functions)}, sort_keys=True, separators=(",", ":"))
    return Sub(body, **sub_variables(config, functions))


# --- alarms ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AlarmSpec:
    """One alarm: `name` gives the logical id `<name>Alarm` and the output `<name>AlarmArn`."""

    name: str
    description: str
    threshold: float
    comparison: str
    treat_missing_data: str
    evaluation_periods: int = 1
    datapoints_to_alarm: int = 1
    metric: dict = field(default_factory=dict)  # Namespace/MetricName/Dimensions/Statistic...
    queries: tuple = ()  # metric math instead of `metric`


def _dimensions(**names_to_variables: str) -> list[cloudwatch.MetricDimension]:
    return [cloudwatch.MetricDimension(Name=name, Value=value) for name, value in names_to_variables.items()]


def _stat_query(query_id: str, namespace: str, metric: str, dimensions, stat: str = "Sum") -> cloudwatch.MetricDataQuery:
    return cloudwatch.MetricDataQuery(
        Id=query_id,
        MetricStat=cloudwatch.MetricStat(
            Metric=cloudwatch.Metric(Namespace=namespace, MetricName=metric, Dimensions=dimensions),
            Period=FIVE_MINUTES,
            Stat=stat,
        ),
        ReturnData=False,
    )


def _lambda_sum_queries(metric: str, functions: list[FunctionDeclaration], variables: dict) -> tuple:
    if len(functions) > MAX_METRICS_PER_MATH_ALARM:
        raise MonitoringError(
            f"monitoring: {len(functions)} functions exceed the {MAX_METRICS_PER_MATH_ALARM} metrics a "
            f"metric-math alarm may use; split the Lambda {metric} alarm"
        )
    if not functions:
        raise MonitoringError("monitoring: no functions are declared under functions/; nothing to alarm on")
    queries = [
        _stat_query(f"m{index}", "AWS/Lambda", metric, _dimensions(FunctionName=variables[_function_variable(f)]))
        for index, f in enumerate(functions)
    ]
    total = cloudwatch.MetricDataQuery(Id="total", Expression="SUM(METRICS())", Label=f"Lambda {metric}", ReturnData=True)
    return (*queries, total)


def alarm_specs(config: EnvironmentConfig, functions: list[FunctionDeclaration], variables: dict) -> list[AlarmSpec]:
    limits = config.monitoring.alarms
    api = _dimensions(ApiName=variables["ApiName"], Stage=variables["ApiStage"])
    alb = _dimensions(LoadBalancer=variables["AlbFullName"])
    return [
        AlarmSpec(
            "ApiLatencyP99",
            f"API p99 latency above {limits.api_p99_latency_ms} ms for 10 minutes",
            limits.api_p99_latency_ms,
            "GreaterThanThreshold",
            "notBreaching",
            evaluation_periods=2,
            datapoints_to_alarm=2,
            metric=dict(Namespace="AWS/ApiGateway", MetricName="Latency", Dimensions=api, ExtendedStatistic="p99"),
        ),
        AlarmSpec(
            "Api5xx",
            f"{limits.api_5xx_per_5min} or more API 5xx answers in 5 minutes",
            limits.api_5xx_per_5min,
            "GreaterThanOrEqualToThreshold",
            "notBreaching",
            metric=dict(Namespace="AWS/ApiGateway", MetricName="5XXError", Dimensions=api, Statistic="Sum"),
        ),
        AlarmSpec(
            "LambdaErrors",
            f"{limits.lambda_errors_per_5min} or more Lambda errors in 5 minutes, all payment functions",
            limits.lambda_errors_per_5min,
            "GreaterThanOrEqualToThreshold",
            "notBreaching",
            queries=_lambda_sum_queries("Errors", functions, variables),
        ),
        AlarmSpec(
            "LambdaThrottles",
            f"{limits.lambda_throttles_per_5min} or more Lambda throttles in 5 minutes, all payment functions",
            limits.lambda_throttles_per_5min,
            "GreaterThanOrEqualToThreshold",
            "notBreaching",
            queries=_lambda_sum_queries("Throttles", functions, variables),
        ),
        AlarmSpec(
            "DlqNotEmpty",
            "Payment messages reached the dead-letter queue",
            0,
            "GreaterThanThreshold",
            "notBreaching",
            metric=dict(
                Namespace="AWS/SQS",
                MetricName="ApproximateNumberOfMessagesVisible",
                Dimensions=_dimensions(QueueName=variables["DlqName"]),
                Statistic="Maximum",
                Period=60,
            ),
        ),
        AlarmSpec(
            "AlarmsUndelivered",
            "Alarm notifications the alarm topic could not deliver are in its dead-letter queue",
            0,
            "GreaterThanThreshold",
            "notBreaching",
            metric=dict(
                Namespace="AWS/SQS",
                MetricName="ApproximateNumberOfMessagesVisible",
                Dimensions=_dimensions(QueueName=variables["AlarmDlqName"]),
                Statistic="Maximum",
                Period=FIVE_MINUTES,
            ),
        ),
        AlarmSpec(
            "AlarmsUnconfirmed",
            "The alarm topic has no confirmed subscription: alarms reach nobody (confirm the e-mail)",
            1,
            "LessThanThreshold",
            # no data: the hourly watch did not run, so nobody knows: as bad as none confirmed
            "breaching",
            metric=dict(
                Namespace=OPERATIONS_NAMESPACE,
                MetricName=CONFIRMED_SUBSCRIPTIONS_METRIC,
                Dimensions=_dimensions(TopicName=variables["AlarmTopicName"]),
                Statistic="Minimum",
                Period=HOUR,
            ),
        ),
        AlarmSpec(
            "AuroraCpu",
            f"Aurora CPU above {limits.aurora_cpu_percent}% for 15 minutes",
            limits.aurora_cpu_percent,
            "GreaterThanThreshold",
            "missing",
            evaluation_periods=3,
            datapoints_to_alarm=3,
            metric=dict(
                Namespace="AWS/RDS",
                MetricName="CPUUtilization",
                Dimensions=_dimensions(DBClusterIdentifier=variables["DbClusterIdentifier"]),
                Statistic="Average",
            ),
        ),
        AlarmSpec(
            "Alb5xx",
            f"{limits.alb_5xx_per_5min} or more ALB 5xx (load balancer and targets) in 5 minutes",
            limits.alb_5xx_per_5min,
            "GreaterThanOrEqualToThreshold",
            "notBreaching",
            queries=(
                _stat_query("elb", "AWS/ApplicationELB", "HTTPCode_ELB_5XX_Count", alb),
                _stat_query("target", "AWS/ApplicationELB", "HTTPCode_Target_5XX_Count", alb),
                cloudwatch.MetricDataQuery(
                    Id="total", Expression="FILL(elb, 0) + FILL(target, 0)", Label="ALB 5xx", ReturnData=True
                ),
            ),
        ),
        AlarmSpec(
            "AlbLatencyP99",
            f"ALB target p99 response time above {limits.alb_latency_p99_ms} ms for 10 minutes",
            limits.alb_latency_p99_ms / 1000,  # the metric is in seconds
            "GreaterThanThreshold",
            "notBreaching",
            evaluation_periods=2,
            datapoints_to_alarm=2,
            metric=dict(
                Namespace="AWS/ApplicationELB", MetricName="TargetResponseTime", Dimensions=alb, ExtendedStatistic="p99"
            ),
        ),
        AlarmSpec(
            "EcsCpu",
            f"ECS service CPU above {limits.ecs_cpu_percent}% for 15 minutes",
            limits.ecs_cpu_percent,
            "GreaterThanThreshold",
            "missing",
            evaluation_periods=3,
            datapoints_to_alarm=3,
            metric=dict(
                Namespace="AWS/ECS",
                MetricName="CPUUtilization",
                Dimensions=_dimensions(ClusterName=variables["EcsClusterName"], ServiceName=variables["EcsServiceName"]),
                Statistic="Average",
            ),
        ),
    ]


def _kebab(name: str) -> str:
    """ApiLatencyP99 -> api-latency-p99, for names that read like every other resource's."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "-", name).lower()


def _add_alarm(template: Template, config: EnvironmentConfig, spec: AlarmSpec, topic) -> cloudwatch.Alarm:
    properties = dict(
        AlarmName=resource_name(config, _kebab(spec.name)),
        AlarmDescription=spec.description,
        ActionsEnabled=True,
        AlarmActions=[topic],
        OKActions=[topic],
        ComparisonOperator=spec.comparison,
        Threshold=spec.threshold,
        EvaluationPeriods=spec.evaluation_periods,
        DatapointsToAlarm=spec.datapoints_to_alarm,
        TreatMissingData=spec.treat_missing_data,
        Tags=tags(config, resource_name(config, _kebab(spec.name))),
    )
    if spec.queries:
        properties["Metrics"] = list(spec.queries)
    else:
        properties.update({"Period": FIVE_MINUTES, **spec.metric})
        if "ExtendedStatistic" in spec.metric:
            # A percentile over a handful of requests is noise, not a signal.
            properties["EvaluateLowSampleCountPercentile"] = "ignore"
    alarm = template.add_resource(cloudwatch.Alarm(f"{spec.name}Alarm", **properties))
    output(template, f"{spec.name}AlarmArn", GetAtt(alarm, "Arn"), spec.description)
    return alarm


def build(config: EnvironmentConfig, functions_dir: Path = FUNCTIONS_DIR) -> Template:
    functions = load_functions(functions_dir)
    template = new_template(config, LAYER, "dashboard and alarms (thresholds per environment)")
    template.add_resource(
        cloudwatch.Dashboard(
            "Dashboard",
            DashboardName=resource_name(config, "overview"),
            DashboardBody=dashboard_body(config, functions),
            Tags=tags(config, resource_name(config, "overview")),
        )
    )
    topic = import_value(config, "messaging", "AlarmTopicArn")
    variables = sub_variables(config, functions)
    specs = alarm_specs(config, functions, variables)
    for spec in specs:
        _add_alarm(template, config, spec, topic)
    outputs = {f"{spec.name}AlarmArn" for spec in specs}
    missing = sorted(key for keys in ROLLBACK_TRIGGERS.values() for key in keys if key not in outputs)
    if missing:
        raise MonitoringError(f"monitoring: rollback triggers name unknown outputs {missing}")
    template.metadata["RollbackTriggers"] = {layer: list(keys) for layer, keys in sorted(ROLLBACK_TRIGGERS.items())}
    return template

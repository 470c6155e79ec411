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
  function. CloudWatch allows 10 metrics per metric-math alarm: past 10 functions each becomes a
  composite alarm over silent part alarms of 10 functions each (the threshold then applies per
  part), keeping one output, one page and one rollback trigger per symptom. The composite has a
  logical id and a name of its own (`...AnyPart`), so the 11th function updates the stack in place.
- TreatMissingData: `notBreaching` for counts and latencies (no traffic is not an incident),
  `missing` for utilisation (CPU), where silence keeps the previous state.
- Alarm ARNs are plain outputs `<Name>AlarmArn` (not exports: nothing imports them, and an
  export would pin them). Template metadata `RollbackTriggers` names, per traffic-serving layer
  (`layers.Layer.serves_traffic`), the outputs deploy attaches as rollback triggers: the alarms
  whose row says they guard that layer.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from troposphere import GetAtt, Sub, Template, cloudwatch

from .common import CONFIRMED_SUBSCRIPTIONS_METRIC, OPERATIONS_NAMESPACE, import_value, new_template, output, resource_name, tags
from .config import EnvironmentConfig
from .function_catalog import FUNCTIONS_DIR, DeclarationError, FunctionDeclaration, function_name_export_key, load_functions
from .messaging import QUEUES, Queue

LAYER = "monitoring"
BUSINESS_NAMESPACE = "Payments"
BUSINESS_SERVICE = "payments"
MAX_METRICS_PER_MATH_ALARM = 10
TABLES = ("Transactions", "Idempotency", "Velocity", "BatchStatus")
FIVE_MINUTES = 300
HOUR = 3600
WIDGET_WIDTH = 12
WIDGET_HEIGHT = 6
MAX_ROLLBACK_TRIGGERS = 5  # CloudFormation's limit per stack


class MonitoringError(DeclarationError):
    """The declared functions cannot be monitored as designed (reported by the build as bad input)."""


def business_dimensions(config: EnvironmentConfig) -> dict[str, str]:
    """The exact dimension set the functions publish business metrics with (the same in every
    environment; `config` stays a parameter so a per-environment dimension is a local change)."""
    return {"service": BUSINESS_SERVICE}


# --- imported names, as Fn::Sub variables ------------------------------------------------------


def _function_variable(function: FunctionDeclaration) -> str:
    return f"{function.logical_name}FunctionName"


def sub_variables(config: EnvironmentConfig, functions: list[FunctionDeclaration], queues: tuple[Queue, ...] = QUEUES) -> dict:
    """Variable name -> Fn::ImportValue for every name the dashboard and alarms use."""
    imports = {
        "ApiName": ("api", "RestApiName"),
        "ApiStage": ("api", "StageName"),
        "AlbFullName": ("compute", "AlbFullName"),
        "EcsClusterName": ("compute", "EcsClusterName"),
        "EcsServiceName": ("compute", "EcsServiceName"),
        "DbClusterIdentifier": ("data", "DbClusterIdentifier"),
        "AlarmDlqName": ("messaging", "AlarmDlqName"),
        "AlarmTopicName": ("messaging", "AlarmTopicName"),
        "BatchStateMachineArn": ("workflow", "BatchStateMachineArn"),
    }
    imports.update({f"{table}TableName": ("data", f"{table}TableName") for table in TABLES})
    for queue in queues:
        imports.update({key: ("messaging", key) for key in (queue.export_key("Queue", "Name"), queue.export_key("Dlq", "Name"))})
    imports.update({_function_variable(f): ("compute", function_name_export_key(f.logical_name)) for f in functions})
    return {name: import_value(config, layer, key) for name, (layer, key) in sorted(imports.items())}


# --- dashboard ---------------------------------------------------------------------------------


def _ref(variable: str) -> str:
    return f"${{{variable}}}"


def _widget(title: str, metrics: list, stat: str = "Sum") -> dict:
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
        },
    }


DEPTH = "ApproximateNumberOfMessagesVisible"
P50, P99 = {"stat": "p50", "label": "p50"}, {"stat": "p99", "label": "p99"}
# Widgets in reading order: (title, default stat, repeated over, lines); a line is (namespace,
# metric, dimension set, options). A widget repeated over "function" or "table" draws its lines once
# per declared function / table, labelled with it (functions keep the line's statistic); one
# repeated over "queue" is drawn once per row of messaging.QUEUES ("{}" in its title: the stem).
WIDGETS = (
    ("Payments accepted, declined, settled", "Sum", None, tuple(
        (BUSINESS_NAMESPACE, metric, "business", {"label": metric})
        for metric in ("PaymentsAccepted", "PaymentsDeclined", "PaymentsSettled"))),
    ("Payment processing time (ms)", "p99", None, (
        (BUSINESS_NAMESPACE, "ProcessingTime", "business", P50),
        (BUSINESS_NAMESPACE, "ProcessingTime", "business", P99))),
    ("API latency (ms)", "p99", None, (
        ("AWS/ApiGateway", "Latency", "api", P50),
        ("AWS/ApiGateway", "Latency", "api", P99),
        ("AWS/ApiGateway", "IntegrationLatency", "api", {"stat": "p99", "label": "integration p99"}))),
    ("API requests and errors", "Sum", None, (
        ("AWS/ApiGateway", "Count", "api", {"label": "requests"}),
        ("AWS/ApiGateway", "4XXError", "api", {"label": "4xx"}),
        ("AWS/ApiGateway", "5XXError", "api", {"label": "5xx"}))),
    ("Lambda invocations", "Sum", "function", (("AWS/Lambda", "Invocations", "function", {"stat": "Sum"}),)),
    ("Lambda errors", "Sum", "function", (("AWS/Lambda", "Errors", "function", {"stat": "Sum"}),)),
    ("Lambda duration p99 (ms)", "p99", "function", (("AWS/Lambda", "Duration", "function", {"stat": "p99"}),)),
    ("Lambda throttles", "Sum", "function", (("AWS/Lambda", "Throttles", "function", {"stat": "Sum"}),)),
    ("DynamoDB consumed capacity", "Sum", "table", (
        ("AWS/DynamoDB", "ConsumedReadCapacityUnits", "table", {}),
        ("AWS/DynamoDB", "ConsumedWriteCapacityUnits", "table", {}))),
    ("DynamoDB throttled requests", "Sum", "table", (
        ("AWS/DynamoDB", "ReadThrottleEvents", "table", {}),
        ("AWS/DynamoDB", "WriteThrottleEvents", "table", {}))),
    ("{} queue and DLQ depth", "Maximum", "queue", (
        ("AWS/SQS", DEPTH, "queue", {"label": "queue"}),
        ("AWS/SQS", DEPTH, "dlq", {"label": "DLQ"}),
        ("AWS/SQS", "ApproximateAgeOfOldestMessage", "queue", {"label": "oldest (s)", "yAxis": "right"}))),
    ("ALB requests and 5xx", "Sum", None, (
        ("AWS/ApplicationELB", "RequestCount", "alb", {"label": "requests"}),
        ("AWS/ApplicationELB", "HTTPCode_ELB_5XX_Count", "alb", {"label": "ELB 5xx"}),
        ("AWS/ApplicationELB", "HTTPCode_Target_5XX_Count", "alb", {"label": "target 5xx"}))),
    ("ALB target response time (s)", "p99", None, (
        ("AWS/ApplicationELB", "TargetResponseTime", "alb", P50),
        ("AWS/ApplicationELB", "TargetResponseTime", "alb", P99))),
    ("ECS service CPU and memory (%)", "Average", None, (
        ("AWS/ECS", "CPUUtilization", "ecs", {"label": "CPU"}),
        ("AWS/ECS", "MemoryUtilization", "ecs", {"label": "memory"}))),
    ("Aurora CPU and connections", "Average", None, (
        ("AWS/RDS", "CPUUtilization", "db", {"label": "CPU %"}),
        ("AWS/RDS", "DatabaseConnections", "db", {"label": "connections", "yAxis": "right"}))),
    ("Batch ingestion: rows and workflow runs", "Sum", None, (
        (BUSINESS_NAMESPACE, "BatchRowsAccepted", "business", {"label": "rows accepted"}),
        (BUSINESS_NAMESPACE, "BatchRowsRejected", "business", {"label": "rows rejected"}),
        ("AWS/States", "ExecutionsStarted", "batch workflow", {"label": "runs started", "yAxis": "right"}),
        ("AWS/States", "ExecutionsFailed", "batch workflow", {"label": "runs failed", "yAxis": "right"}),
        ("AWS/States", "ExecutionsTimedOut", "batch workflow", {"label": "runs timed out", "yAxis": "right"}))),
    ("Alarm delivery: confirmed subscriptions, undelivered notifications", "Maximum", None, (
        (OPERATIONS_NAMESPACE, CONFIRMED_SUBSCRIPTIONS_METRIC, "alarm topic",
         {"stat": "Minimum", "period": HOUR, "label": "confirmed subscriptions"}),
        ("AWS/SQS", DEPTH, "alarm dlq", {"label": "undelivered", "yAxis": "right"}))),
)


def _dimension_sets(config: EnvironmentConfig) -> dict[str, list[str]]:
    """Dimension set name -> the dashboard's [name, value, ...] parts (values are Fn::Sub references)."""
    return {
        "business": [part for pair in sorted(business_dimensions(config).items()) for part in pair],
        "api": ["ApiName", _ref("ApiName"), "Stage", _ref("ApiStage")],
        "alb": ["LoadBalancer", _ref("AlbFullName")],
        "ecs": ["ClusterName", _ref("EcsClusterName"), "ServiceName", _ref("EcsServiceName")],
        "db": ["DBClusterIdentifier", _ref("DbClusterIdentifier")],
        "alarm topic": ["TopicName", _ref("AlarmTopicName")],
        "alarm dlq": ["QueueName", _ref("AlarmDlqName")],
        "batch workflow": ["StateMachineArn", _ref("BatchStateMachineArn")],
    }


def _widget_lines(repeated_over, lines: tuple, dimension_sets: dict, functions: list[FunctionDeclaration]) -> list:
    if repeated_over == "function":
        return [
            [namespace, metric, "FunctionName", _ref(_function_variable(f)), {**options, "label": f.name}]
            for namespace, metric, _, options in lines
            for f in functions
        ]
    if repeated_over == "table":
        return [
            [namespace, metric, "TableName", _ref(f"{table}TableName"), {**options, "label": f"{table} {metric}"}]
            for table in TABLES
            for namespace, metric, _, options in lines
        ]
    return [[namespace, metric, *dimension_sets[dimensions], dict(options)] for namespace, metric, dimensions, options in lines]


def _queue_dimension_sets(queue: Queue) -> dict[str, list[str]]:
    return {
        "queue": ["QueueName", _ref(queue.export_key("Queue", "Name"))],
        "dlq": ["QueueName", _ref(queue.export_key("Dlq", "Name"))],
    }


def dashboard_widgets(config: EnvironmentConfig, functions: list[FunctionDeclaration],
                      queues: tuple[Queue, ...] = QUEUES) -> list[dict]:
    """Every widget, laid out two per row in reading order."""
    dimension_sets = _dimension_sets(config)
    widgets = []
    for title, stat, repeated_over, lines in WIDGETS:
        if repeated_over == "queue":
            widgets += [
                _widget(title.format(queue.stem), _widget_lines(None, lines, _queue_dimension_sets(queue), functions), stat)
                for queue in queues
            ]
        else:
            widgets.append(_widget(title, _widget_lines(repeated_over, lines, dimension_sets, functions), stat))
    for index, widget in enumerate(widgets):
        widget.update(x=(index % 2) * WIDGET_WIDTH, y=(index // 2) * WIDGET_HEIGHT, width=WIDGET_WIDTH, height=WIDGET_HEIGHT)
    return widgets


def dashboard_body(config: EnvironmentConfig, functions: list[FunctionDeclaration], queues: tuple[Queue, ...] = QUEUES) -> Sub:
    body = json.dumps({"widgets": dashboard_widgets(config, functions, queues)}, sort_keys=True, separators=(",", ":"))
    return Sub(body, **sub_variables(config, functions, queues))


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
    guards: str | None = None  # the traffic-serving layer whose deploys roll back on this alarm
    notifies: bool = True  # False for the parts of a composite alarm: the composite pages once
    any_of: tuple[str, ...] = ()  # a composite alarm: in alarm when any of these alarms is


@dataclass(frozen=True)
class Metric:
    """One CloudWatch metric an alarm watches; `dimensions` maps dimension names to Fn::Sub variables."""

    namespace: str
    name: str
    dimensions: tuple[tuple[str, str], ...]
    statistic: str  # "p99" and the like become ExtendedStatistic
    period: int = FIVE_MINUTES


@dataclass(frozen=True)
class LambdaSum:
    """Metric math: `metric` summed over every declared function (known only at build time)."""

    metric: str


ALB_5XX_SUM = "ALB 5xx"  # metric math: load balancer 5xx plus target 5xx (`_alb_5xx_queries`)

API = (("ApiName", "ApiName"), ("Stage", "ApiStage"))
ALB = (("LoadBalancer", "AlbFullName"),)
GT, GE, LT = "GreaterThanThreshold", "GreaterThanOrEqualToThreshold", "LessThanThreshold"

# name, description ("{}" is the configured limit), threshold (an AlarmThresholds field, a
# (field, divisor) pair or a constant), comparison, missing data, evaluation periods, signal, and
# the layer it guards: a rollback trigger of that layer's deploys (a layer that serves traffic).
ALARMS = (
    ("Api5xx", "{} or more API 5xx answers in 5 minutes", "api_5xx_per_5min", GE, "notBreaching", 1,
     Metric("AWS/ApiGateway", "5XXError", API, "Sum"), "api"),
    ("ApiLatencyP99", "API p99 latency above {} ms for 10 minutes", "api_p99_latency_ms", GT, "notBreaching", 2,
     Metric("AWS/ApiGateway", "Latency", API, "p99"), "api"),
    ("LambdaErrors", "{} or more Lambda errors in 5 minutes, all payment functions", "lambda_errors_per_5min", GE,
     "notBreaching", 1, LambdaSum("Errors"), "compute"),
    ("LambdaThrottles", "{} or more Lambda throttles in 5 minutes, all payment functions", "lambda_throttles_per_5min", GE,
     "notBreaching", 1, LambdaSum("Throttles"), "compute"),
    ("AlarmsUndelivered", "Alarm notifications the alarm topic could not deliver are in its dead-letter queue", 0, GT,
     "notBreaching", 1, Metric("AWS/SQS", "ApproximateNumberOfMessagesVisible", (("QueueName", "AlarmDlqName"),), "Maximum"), None),
    # no data: the hourly watch did not run, so nobody knows: as bad as none confirmed
    ("AlarmsUnconfirmed", "The alarm topic has no confirmed subscription: alarms reach nobody (confirm the e-mail)", 1, LT,
     "breaching", 1,
     Metric(OPERATIONS_NAMESPACE, CONFIRMED_SUBSCRIPTIONS_METRIC, (("TopicName", "AlarmTopicName"),), "Minimum", HOUR), None),
    ("AuroraCpu", "Aurora CPU above {}% for 15 minutes", "aurora_cpu_percent", GT, "missing", 3,
     Metric("AWS/RDS", "CPUUtilization", (("DBClusterIdentifier", "DbClusterIdentifier"),), "Average"), None),
    ("Alb5xx", "{} or more ALB 5xx (load balancer and targets) in 5 minutes", "alb_5xx_per_5min", GE, "notBreaching", 1,
     ALB_5XX_SUM, "compute"),
    # the metric is in seconds, the limit in milliseconds
    ("AlbLatencyP99", "ALB target p99 response time above {} ms for 10 minutes", ("alb_latency_p99_ms", 1000), GT,
     "notBreaching", 2, Metric("AWS/ApplicationELB", "TargetResponseTime", ALB, "p99"), "compute"),
    # a failed run left rows unprocessed (named batch_failed in the merchant's report)
    ("BatchRunsFailed", "A batch ingestion run failed or left rows unprocessed", 0, GT, "notBreaching", 1,
     Metric("AWS/States", "ExecutionsFailed", (("StateMachineArn", "BatchStateMachineArn"),), "Sum"), None),
    ("BatchRunsTimedOut", "A batch ingestion run timed out", 0, GT, "notBreaching", 1,
     Metric("AWS/States", "ExecutionsTimedOut", (("StateMachineArn", "BatchStateMachineArn"),), "Sum"), None),
    ("EcsCpu", "ECS service CPU above {}% for 15 minutes", "ecs_cpu_percent", GT, "missing", 3,
     Metric("AWS/ECS", "CPUUtilization", (("ClusterName", "EcsClusterName"), ("ServiceName", "EcsServiceName")), "Average"), None),
)


def queue_alarm_rows(queue: Queue) -> tuple:
    """ALARMS rows for one row of messaging.QUEUES: its DLQ holds a message; where the row sets
    them, its oldest message is too old or too many messages wait."""
    queue_name = (("QueueName", queue.export_key("Queue", "Name")),)
    dlq_name = (("QueueName", queue.export_key("Dlq", "Name")),)
    rows: list[tuple] = [
        (f"{queue.stem}DlqNotEmpty", f"{queue.stem} messages reached the dead-letter queue", 0, GT, "notBreaching", 1,
         Metric("AWS/SQS", DEPTH, dlq_name, "Maximum", 60), None),
    ]
    if queue.oldest_message_alarm_s is not None:
        rows.append((f"{queue.stem}QueueOldestMessage", f"A {queue.stem} queue message has waited more than {{}} s",
                     queue.oldest_message_alarm_s, GT, "notBreaching", 1,
                     Metric("AWS/SQS", "ApproximateAgeOfOldestMessage", queue_name, "Maximum"), None))
    if queue.depth_alarm is not None:
        rows.append((f"{queue.stem}QueueDepth", f"More than {{}} messages wait in the {queue.stem} queue", queue.depth_alarm,
                     GT, "notBreaching", 1, Metric("AWS/SQS", DEPTH, queue_name, "Maximum"), None))
    return tuple(rows)


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
    queries = [
        _stat_query(f"m{index}", "AWS/Lambda", metric, _dimensions(FunctionName=variables[_function_variable(f)]))
        for index, f in enumerate(functions)
    ]
    total = cloudwatch.MetricDataQuery(Id="total", Expression="SUM(METRICS())", Label=f"Lambda {metric}", ReturnData=True)
    return (*queries, total)


def _alb_5xx_queries(variables: dict) -> tuple:
    alb = _dimensions(LoadBalancer=variables["AlbFullName"])
    return (
        _stat_query("elb", "AWS/ApplicationELB", "HTTPCode_ELB_5XX_Count", alb),
        _stat_query("target", "AWS/ApplicationELB", "HTTPCode_Target_5XX_Count", alb),
        cloudwatch.MetricDataQuery(Id="total", Expression="FILL(elb, 0) + FILL(target, 0)", Label="ALB 5xx", ReturnData=True),
    )


def _lambda_sum_specs(spec: AlarmSpec, metric: str, functions: list[FunctionDeclaration], variables: dict) -> list[AlarmSpec]:
    """`spec` summing every function's `metric`. A metric-math alarm takes at most
    MAX_METRICS_PER_MATH_ALARM metrics, so past that many functions: one silent part alarm per group
    and, under `spec`'s name (the rollback trigger), a composite alarm in alarm when any part is.
    The threshold then applies to each group's sum, not the grand total."""
    if not functions:
        raise MonitoringError("monitoring: no functions are declared under functions/; nothing to alarm on")
    size = MAX_METRICS_PER_MATH_ALARM
    groups = [functions[start:start + size] for start in range(0, len(functions), size)]
    if len(groups) == 1:
        return [replace(spec, queries=_lambda_sum_queries(metric, functions, variables))]
    parts = [
        replace(
            spec,
            name=f"{spec.name}Part{number}",
            description=f"{spec.description}: part {number} of {len(groups)}, {group[0].name} to {group[-1].name}",
            queries=_lambda_sum_queries(metric, group, variables),
            guards=None,
            notifies=False,
        )
        for number, group in enumerate(groups, 1)
    ]
    return [*parts, replace(spec, any_of=tuple(part.name for part in parts))]


def _metric_properties(metric: Metric, variables: dict) -> dict:
    statistic_key = "ExtendedStatistic" if metric.statistic.startswith("p") else "Statistic"
    return {
        "Namespace": metric.namespace,
        "MetricName": metric.name,
        "Dimensions": _dimensions(**{name: variables[variable] for name, variable in metric.dimensions}),
        statistic_key: metric.statistic,
        "Period": metric.period,
    }


def _threshold(source, limits) -> tuple[float, object]:
    """(alarm threshold, the configured limit the description quotes) for a row's threshold source."""
    if isinstance(source, str):
        limit = getattr(limits, source)
        return limit, limit
    if isinstance(source, tuple):
        limit = getattr(limits, source[0])
        return limit / source[1], limit
    return source, source


def alarm_specs(config: EnvironmentConfig, functions: list[FunctionDeclaration], variables: dict,
                queues: tuple[Queue, ...] = QUEUES) -> list[AlarmSpec]:
    specs = []
    rows = ALARMS + tuple(row for queue in queues for row in queue_alarm_rows(queue))
    for name, description, source, comparison, missing, periods, signal, guards in rows:
        threshold, limit = _threshold(source, config.monitoring.alarms)
        spec = AlarmSpec(
            name, description.format(limit), threshold, comparison, missing,
            evaluation_periods=periods, datapoints_to_alarm=periods, guards=guards,
        )
        if isinstance(signal, Metric):
            specs.append(replace(spec, metric=_metric_properties(signal, variables)))
        elif isinstance(signal, LambdaSum):
            specs += _lambda_sum_specs(spec, signal.metric, functions, variables)
        else:
            specs.append(replace(spec, queries=_alb_5xx_queries(variables)))
    return specs


def _kebab(name: str) -> str:
    """ApiLatencyP99 -> api-latency-p99, for names that read like every other resource's."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "-", name).lower()


# The composite's logical id and name differ from the single alarm's it replaces when a function
# is added: CloudFormation refuses a change of a logical id's type, and the new alarm is created
# before the old one is deleted (at cleanup), so it cannot take its name either.
COMPOSITE_SUFFIX = "AnyPart"


def _add_composite_alarm(template: Template, config: EnvironmentConfig, spec: AlarmSpec, topic) -> cloudwatch.CompositeAlarm:
    names = [resource_name(config, _kebab(part)) for part in spec.any_of]
    name = resource_name(config, _kebab(spec.name + COMPOSITE_SUFFIX))
    alarm = template.add_resource(
        cloudwatch.CompositeAlarm(
            f"{spec.name}{COMPOSITE_SUFFIX}Alarm",
            DependsOn=[f"{part}Alarm" for part in spec.any_of],
            AlarmName=name,
            AlarmDescription=spec.description,
            AlarmRule=" OR ".join(f'ALARM("{name}")' for name in names),
            ActionsEnabled=True,
            AlarmActions=[topic],
            OKActions=[topic],
            Tags=tags(config, name),
        )
    )
    output(template, f"{spec.name}AlarmArn", GetAtt(alarm, "Arn"), spec.description)
    return alarm


def _add_alarm(template: Template, config: EnvironmentConfig, spec: AlarmSpec, topic) -> cloudwatch.Alarm:
    if spec.any_of:
        return _add_composite_alarm(template, config, spec, topic)
    actions = dict(AlarmActions=[topic], OKActions=[topic]) if spec.notifies else {}
    properties = dict(
        AlarmName=resource_name(config, _kebab(spec.name)),
        AlarmDescription=spec.description,
        ActionsEnabled=True,
        **actions,
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


def build(config: EnvironmentConfig, functions_dir: Path = FUNCTIONS_DIR, queues: tuple[Queue, ...] = QUEUES) -> Template:
    """`queues` replaces messaging.QUEUES (tests only)."""
    functions = load_functions(functions_dir)
    template = new_template(config, LAYER, "dashboard and alarms (thresholds per environment)")
    template.add_resource(
        cloudwatch.Dashboard(
            "Dashboard",
            DashboardName=resource_name(config, "overview"),
            DashboardBody=dashboard_body(config, functions, queues),
            Tags=tags(config, resource_name(config, "overview")),
        )
    )
    topic = import_value(config, "messaging", "AlarmTopicArn")
    variables = sub_variables(config, functions, queues)
    specs = alarm_specs(config, functions, variables, queues)
    for spec in specs:
        _add_alarm(template, config, spec, topic)
    template.metadata["RollbackTriggers"] = rollback_triggers(specs)
    return template


def rollback_triggers(specs: list[AlarmSpec]) -> dict[str, list[str]]:
    """Traffic-serving layer (`Layer.serves_traffic`) -> the alarm outputs that guard its deploys."""
    from .layers import LAYERS  # layers imports every layer module, this one included

    serving = sorted(layer.name for layer in LAYERS if layer.serves_traffic)
    triggers = {name: [f"{spec.name}AlarmArn" for spec in specs if spec.guards == name] for name in serving}
    stray = sorted(spec.name for spec in specs if spec.guards and spec.guards not in serving)
    if stray:
        raise MonitoringError(f"monitoring: alarms {stray} guard a layer that serves no traffic")
    for name, outputs in triggers.items():
        if not 1 <= len(outputs) <= MAX_ROLLBACK_TRIGGERS:
            raise MonitoringError(
                f"monitoring: layer {name} serves traffic and needs 1 to {MAX_ROLLBACK_TRIGGERS} alarms guarding it, has {len(outputs)}"
            )
    return triggers

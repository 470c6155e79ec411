"""monitoring layer: dashboard, alarms with per-environment thresholds, rollback trigger outputs."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from templates_src import monitoring
from templates_src.compute_functions import PLATFORM_ENVIRONMENT_DEFAULTS
from templates_src.config import load_environment
from templates_src.function_catalog import FUNCTIONS_DIR
from templates_src.layers import LAYERS

from .helpers import logical, write_function

ENVIRONMENTS = ("dev", "staging", "prod")
FUNCTION_NAMES = ("audit_logger", "fraud_screening", "payment_api", "queue_worker", "status")
ALARMS = ("ApiLatencyP99", "Api5xx", "LambdaErrors", "LambdaThrottles", "AuroraCpu", "Alb5xx", "AlbLatencyP99", "EcsCpu",
          "BatchRunsFailed", "BatchRunsTimedOut",
          "AlarmsUndelivered", "AlarmsUnconfirmed", "PaymentDlqNotEmpty", "PaymentQueueOldestMessage")


@pytest.fixture
def functions_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "functions"
    for name in FUNCTION_NAMES:
        write_function(directory, name)
    return directory


def build_dict(env: str, functions_dir: Path) -> dict:
    return json.loads(monitoring.build(load_environment(env), functions_dir).to_json())


def alarms_of(template: dict) -> dict[str, dict]:
    return {key: r["Properties"] for key, r in template["Resources"].items() if r["Type"] == "AWS::CloudWatch::Alarm"}


def dashboard(template: dict) -> tuple[dict, dict]:
    body, variables = template["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    return json.loads(body), variables


def all_metrics(body: dict) -> list[list]:
    return [metric for widget in body["widgets"] for metric in widget["properties"]["metrics"]]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_alarm_notifies_the_alarm_topic_both_ways(env, functions_dir):
    alarms = alarms_of(build_dict(env, functions_dir))
    assert set(alarms) == {f"{name}Alarm" for name in ALARMS}
    topic = [{"Fn::ImportValue": f"payments-{env}-messaging-AlarmTopicArn"}]
    for key, alarm in alarms.items():
        assert alarm["AlarmActions"] == topic, key
        assert alarm["OKActions"] == topic, key
        assert alarm["TreatMissingData"] in {"notBreaching", "missing", "breaching", "ignore"}, key
        assert alarm["AlarmName"].startswith(f"payments-{env}-"), key


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_thresholds_come_from_the_environment(env, functions_dir):
    limits = load_environment(env).monitoring.alarms
    alarms = alarms_of(build_dict(env, functions_dir))
    assert alarms["ApiLatencyP99Alarm"]["Threshold"] == limits.api_p99_latency_ms
    assert alarms["ApiLatencyP99Alarm"]["ExtendedStatistic"] == "p99"
    assert alarms["Api5xxAlarm"]["Threshold"] == limits.api_5xx_per_5min
    assert alarms["LambdaErrorsAlarm"]["Threshold"] == limits.lambda_errors_per_5min
    assert alarms["LambdaThrottlesAlarm"]["Threshold"] == limits.lambda_throttles_per_5min
    assert alarms["AuroraCpuAlarm"]["Threshold"] == limits.aurora_cpu_percent
    assert alarms["Alb5xxAlarm"]["Threshold"] == limits.alb_5xx_per_5min
    assert alarms["AlbLatencyP99Alarm"]["Threshold"] == pytest.approx(limits.alb_latency_p99_ms / 1000)
    assert alarms["EcsCpuAlarm"]["Threshold"] == limits.ecs_cpu_percent
    dlq = alarms["PaymentDlqNotEmptyAlarm"]
    assert (dlq["Threshold"], dlq["ComparisonOperator"]) == (0, "GreaterThanThreshold")
    assert dlq["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::ImportValue": f"payments-{env}-messaging-PaymentDlqName"}}]


@pytest.mark.parametrize("metric", ["Errors", "Throttles"])
def test_lambda_alarms_sum_every_declared_function(functions_dir, metric):
    alarm = alarms_of(build_dict("prod", functions_dir))[f"Lambda{metric}Alarm"]
    queries = alarm["Metrics"]
    stats = [q for q in queries if "MetricStat" in q]
    names = {q["MetricStat"]["Metric"]["Dimensions"][0]["Value"]["Fn::ImportValue"] for q in stats}
    assert names == {f"payments-prod-compute-{logical(n)}FunctionName" for n in FUNCTION_NAMES}
    assert all(q["MetricStat"]["Metric"]["MetricName"] == metric and q["ReturnData"] is False for q in stats)
    (total,) = [q for q in queries if q.get("ReturnData")]
    assert total["Expression"] == "SUM(METRICS())"


@pytest.mark.parametrize("metric", ["Errors", "Throttles"])
def test_twelve_functions_split_the_lambda_alarm_into_parts_under_one_composite(tmp_path, metric):
    directory = tmp_path / "functions"
    names = [f"synthetic_{index:02d}" for index in range(12)]
    for name in names:
        write_function(directory, name)
    template = build_dict("prod", directory)
    alarms = alarms_of(template)
    parts = [alarms[f"Lambda{metric}Part1Alarm"], alarms[f"Lambda{metric}Part2Alarm"]]
    assert f"Lambda{metric}Part3Alarm" not in alarms
    summed = [
        q["MetricStat"]["Metric"]["Dimensions"][0]["Value"]["Fn::ImportValue"]
        for part in parts for q in part["Metrics"] if "MetricStat" in q
    ]
    assert summed == [f"payments-prod-compute-{logical(name)}FunctionName" for name in names]
    assert [len(part["Metrics"]) - 1 for part in parts] == [10, 2]
    assert all("AlarmActions" not in part and "OKActions" not in part for part in parts)
    composite = template["Resources"][f"Lambda{metric}AnyPartAlarm"]
    assert composite["Type"] == "AWS::CloudWatch::CompositeAlarm"
    assert composite["Properties"]["AlarmName"] == f"payments-prod-lambda-{metric.lower()}-any-part"
    assert composite["Properties"]["AlarmRule"] == (
        f'ALARM("payments-prod-lambda-{metric.lower()}-part1") OR ALARM("payments-prod-lambda-{metric.lower()}-part2")'
    )
    assert composite["Properties"]["AlarmActions"] == [{"Fn::ImportValue": "payments-prod-messaging-AlarmTopicArn"}]
    assert f"Lambda{metric}AlarmArn" in template["Metadata"]["RollbackTriggers"]["compute"]
    every_alarm = [r["Properties"] for r in template["Resources"].values() if r["Type"] == "AWS::CloudWatch::Alarm"]
    assert all(sum("MetricStat" in q for q in a.get("Metrics", [])) <= monitoring.MAX_METRICS_PER_MATH_ALARM for a in every_alarm)


def test_growing_past_ten_functions_updates_the_stack_in_place(tmp_path):
    """CloudFormation refuses a template that changes a logical id's type, and a new alarm cannot
    take the name of one deleted only at cleanup: the composite alarm an 11th function brings gets
    a logical id and a name of its own; the output (the rollback trigger) keeps its key."""
    directory = tmp_path / "functions"
    for index in range(10):
        write_function(directory, f"synthetic_{index:02d}")
    ten = build_dict("prod", directory)
    write_function(directory, "synthetic_10")
    eleven = build_dict("prod", directory)
    for logical_id in set(ten["Resources"]) & set(eleven["Resources"]):
        assert ten["Resources"][logical_id]["Type"] == eleven["Resources"][logical_id]["Type"], logical_id

    def names(template: dict) -> dict[str, str]:
        return {r["Properties"]["AlarmName"]: logical_id for logical_id, r in template["Resources"].items()
                if r["Type"].startswith("AWS::CloudWatch::") and "AlarmName" in r["Properties"]}
    before, after = names(ten), names(eleven)
    assert all(before[name] == after[name] for name in set(before) & set(after))
    assert set(ten["Outputs"]) <= set(eleven["Outputs"])
    trigger = eleven["Outputs"]["LambdaErrorsAlarmArn"]["Value"]["Fn::GetAtt"][0]
    assert eleven["Resources"][trigger]["Type"] == "AWS::CloudWatch::CompositeAlarm"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_alarm_outputs_and_rollback_triggers(env, functions_dir):
    template = build_dict(env, functions_dir)
    outputs = template["Outputs"]
    assert set(outputs) == {f"{name}AlarmArn" for name in ALARMS}
    for key, value in outputs.items():
        assert "Export" not in value, key
        assert value["Value"] == {"Fn::GetAtt": [key.removesuffix("Arn"), "Arn"]}
    triggers = template["Metadata"]["RollbackTriggers"]
    assert set(triggers) == {layer.name for layer in LAYERS if layer.serves_traffic} == {"api", "compute"}
    for layer, keys in triggers.items():
        assert 1 <= len(keys) <= 5, layer
        assert set(keys) <= set(outputs), layer
    assert "Api5xxAlarmArn" in triggers["api"] and "LambdaErrorsAlarmArn" in triggers["compute"]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_dashboard_substitutions_are_all_defined_and_used(env, functions_dir):
    template = build_dict(env, functions_dir)
    raw_body = template["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"][0]
    _, variables = dashboard(template)
    used = set(re.findall(r"\$\{([^}]+)\}", raw_body)) - {"AWS::Region"}
    assert used == set(variables)
    for name in FUNCTION_NAMES:
        assert variables[f"{logical(name)}FunctionName"] == {"Fn::ImportValue": f"payments-{env}-compute-{logical(name)}FunctionName"}
    assert variables["ApiName"] == {"Fn::ImportValue": f"payments-{env}-api-RestApiName"}
    assert variables["DbClusterIdentifier"] == {"Fn::ImportValue": f"payments-{env}-data-DbClusterIdentifier"}


def test_dashboard_covers_every_required_metric(functions_dir):
    body, _ = dashboard(build_dict("staging", functions_dir))
    seen = {(metric[0], metric[1]) for metric in all_metrics(body)}
    required = {
        ("AWS/ApiGateway", "Latency"), ("AWS/ApiGateway", "4XXError"), ("AWS/ApiGateway", "5XXError"),
        ("AWS/Lambda", "Invocations"), ("AWS/Lambda", "Errors"), ("AWS/Lambda", "Duration"), ("AWS/Lambda", "Throttles"),
        ("AWS/DynamoDB", "ConsumedReadCapacityUnits"), ("AWS/DynamoDB", "ConsumedWriteCapacityUnits"),
        ("AWS/DynamoDB", "ReadThrottleEvents"), ("AWS/DynamoDB", "WriteThrottleEvents"),
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
        ("AWS/ApplicationELB", "RequestCount"), ("AWS/ApplicationELB", "TargetResponseTime"),
        ("AWS/ApplicationELB", "HTTPCode_Target_5XX_Count"),
        ("AWS/ECS", "CPUUtilization"), ("AWS/ECS", "MemoryUtilization"),
        ("AWS/RDS", "CPUUtilization"), ("AWS/RDS", "DatabaseConnections"),
        ("Payments", "PaymentsAccepted"), ("Payments", "PaymentsDeclined"), ("Payments", "PaymentsSettled"),
        ("Payments", "ProcessingTime"),
    }
    assert required <= seen
    latency_stats = {m[-1]["stat"] for m in all_metrics(body) if m[:2] == ["AWS/ApiGateway", "Latency"]}
    assert {"p50", "p99"} <= latency_stats
    lambda_functions = {m[3] for m in all_metrics(body) if m[:2] == ["AWS/Lambda", "Errors"]}
    assert lambda_functions == {f"${{{logical(n)}FunctionName}}" for n in FUNCTION_NAMES}
    queues = {m[3] for m in all_metrics(body) if m[1] == "ApproximateNumberOfMessagesVisible"}
    assert queues == {"${PaymentQueueName}", "${PaymentDlqName}", "${AlarmDlqName}"}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_business_metrics_use_the_documented_dimensions(env, functions_dir):
    body, _ = dashboard(build_dict(env, functions_dir))
    business = [m for m in all_metrics(body) if m[0] == monitoring.BUSINESS_NAMESPACE]
    assert business
    for metric in business:
        dimensions = dict(zip(metric[2:-1:2], metric[3:-1:2], strict=False))
        assert dimensions == {"service": "payments"}


@pytest.mark.skipif(not (FUNCTIONS_DIR / "paylib" / "observability.py").exists(), reason="paylib not written yet")
def test_business_dimensions_match_what_the_functions_emit(monkeypatch):
    """Serialise a metric through the functions' own Powertools setup: same namespace, same
    dimension set, or the dashboard would show nothing."""
    import importlib

    monkeypatch.syspath_prepend(str(FUNCTIONS_DIR))
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "payments")
    observability = importlib.import_module("paylib.observability")
    metrics = observability.metrics
    metrics.add_metric(name="PaymentsAccepted", unit=observability.MetricUnit.Count, value=1)
    try:
        emitted = metrics.serialize_metric_set()
    finally:
        metrics.clear_metrics()
    (directive,) = emitted["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == monitoring.BUSINESS_NAMESPACE
    expected = monitoring.business_dimensions(load_environment("prod"))
    assert set(directive["Dimensions"][0]) == set(expected)
    assert {name: emitted[name] for name in expected} == expected


def test_widgets_do_not_overlap(functions_dir):
    body, _ = dashboard(build_dict("dev", functions_dir))
    cells = [(w["x"], w["y"]) for w in body["widgets"]]
    assert len(cells) == len(set(cells))
    assert all(w["x"] + w["width"] <= 24 for w in body["widgets"])


def test_build_is_deterministic(functions_dir):
    config = load_environment("prod")
    assert monitoring.build(config, functions_dir).to_json() == monitoring.build(config, functions_dir).to_json()


def test_no_functions_is_explained(tmp_path):
    (tmp_path / "functions").mkdir()
    with pytest.raises(monitoring.MonitoringError, match="no functions"):
        monitoring.build(load_environment("dev"), tmp_path / "functions")


@pytest.mark.skipif(
    not any(d.name != "paylib" and (d / "function.yaml").exists() for d in FUNCTIONS_DIR.iterdir() if d.is_dir()),
    reason="functions/ declarations not written yet",
)
@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_repository_functions_are_all_monitored(env):
    from templates_src.function_catalog import load_functions

    template = json.loads(monitoring.build(load_environment(env)).to_json())
    _, variables = dashboard(template)
    for function in load_functions():
        assert f"{function.logical_name}FunctionName" in variables
        service = function.environment.get("POWERTOOLS_SERVICE_NAME")
        assert service is None or service.value == monitoring.BUSINESS_SERVICE, function.name
    # a function that does not declare it publishes under the platform default
    assert PLATFORM_ENVIRONMENT_DEFAULTS["POWERTOOLS_SERVICE_NAME"] == monitoring.BUSINESS_SERVICE


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_alarm_delivery_itself_is_alarmed(env, functions_dir):
    alarms = alarms_of(build_dict(env, functions_dir))
    undelivered = alarms["AlarmsUndeliveredAlarm"]
    assert (undelivered["MetricName"], undelivered["Threshold"], undelivered["ComparisonOperator"]) == (
        "ApproximateNumberOfMessagesVisible", 0, "GreaterThanThreshold")
    assert undelivered["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::ImportValue": f"payments-{env}-messaging-AlarmDlqName"}}]
    unconfirmed = alarms["AlarmsUnconfirmedAlarm"]
    assert (unconfirmed["Namespace"], unconfirmed["MetricName"]) == ("Payments/Operations", "ConfirmedAlarmSubscriptions")
    assert (unconfirmed["Threshold"], unconfirmed["ComparisonOperator"], unconfirmed["Period"]) == (1, "LessThanThreshold", 3600)
    assert unconfirmed["TreatMissingData"] == "breaching"  # the watch not running is as bad as nobody confirmed


def test_an_alarm_guarding_a_layer_that_serves_no_traffic_is_an_error():
    spec = monitoring.AlarmSpec("Stray", "guards data", 1, "GreaterThanThreshold", "missing", guards="data")
    with pytest.raises(monitoring.MonitoringError, match=r"\['Stray'\] guard a layer that serves no traffic"):
        monitoring.rollback_triggers([spec])


def test_a_traffic_serving_layer_without_a_guarding_alarm_is_an_error():
    spec = monitoring.AlarmSpec("OnlyApi", "guards api", 1, "GreaterThanThreshold", "missing", guards="api")
    with pytest.raises(monitoring.MonitoringError, match="layer compute serves traffic and needs 1 to 5"):
        monitoring.rollback_triggers([spec])


def test_a_queue_row_gets_its_alarms_and_widget(functions_dir):
    """Adding a queue is one row of messaging.QUEUES: monitoring derives its alarms and widget."""
    from templates_src.messaging import QUEUES, Queue

    refunds = Queue("refund_queue", "Refund", "refunds", "refunds", retention_s=86400,
                    oldest_message_alarm_s=600, depth_alarm=1000)
    template = json.loads(monitoring.build(load_environment("prod"), functions_dir, (*QUEUES, refunds)).to_json())
    alarms = alarms_of(template)
    refund_queue = [{"Name": "QueueName", "Value": {"Fn::ImportValue": "payments-prod-messaging-RefundQueueName"}}]
    assert alarms["RefundDlqNotEmptyAlarm"]["Dimensions"] == [
        {"Name": "QueueName", "Value": {"Fn::ImportValue": "payments-prod-messaging-RefundDlqName"}}]
    oldest, depth = alarms["RefundQueueOldestMessageAlarm"], alarms["RefundQueueDepthAlarm"]
    assert (oldest["MetricName"], oldest["Threshold"], oldest["Dimensions"]) == (
        "ApproximateAgeOfOldestMessage", 600, refund_queue)
    assert (depth["MetricName"], depth["Threshold"], depth["Dimensions"]) == (
        "ApproximateNumberOfMessagesVisible", 1000, refund_queue)
    assert depth["AlarmDescription"] == "More than 1000 messages wait in the Refund queue"
    body, variables = dashboard(template)
    assert "Refund queue and DLQ depth" in [widget["properties"]["title"] for widget in body["widgets"]]
    assert variables["RefundDlqName"] == {"Fn::ImportValue": "payments-prod-messaging-RefundDlqName"}
    # a queue row without thresholds still alarms on its dead letters, never on age or depth
    assert "PaymentQueueDepthAlarm" not in alarms

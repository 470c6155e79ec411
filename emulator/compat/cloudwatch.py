"""CloudWatch: metric and composite alarms (dashboards are moto's model)."""
from __future__ import annotations

import re
from typing import Any

from .cloudformation.providers import Provider, Request, State, register
from .errors import ResourceFailure


def backend(request: Request) -> Any:
    from moto.cloudwatch.models import cloudwatch_backends

    return cloudwatch_backends[request.account_id][request.region]


def _queries(metrics: list[dict]) -> list[Any] | None:
    from moto.cloudwatch.models import Dimension, Metric, MetricDataQuery, MetricStat

    if not metrics:
        return None
    queries = []
    for metric in metrics:
        stat = None
        details = metric.get("MetricStat")
        if details:
            inner = details.get("Metric", {})
            stat = MetricStat(
                metric=Metric(metric_name=inner.get("MetricName"), namespace=inner.get("Namespace"),
                              dimensions=[Dimension(d.get("Name"), d.get("Value")) for d in inner.get("Dimensions", [])]),
                period=details.get("Period"), stat=details.get("Stat"), unit=details.get("Unit"))
        queries.append(MetricDataQuery(query_id=metric.get("Id"), label=metric.get("Label"), period=metric.get("Period"),
                                       return_data=metric.get("ReturnData"), expression=metric.get("Expression"),
                                       metric_stat=stat))
    return queries


class AlarmProvider(Provider):
    """moto gap: AWS::CloudWatch::Alarm has no model (skipped; GetAtt Arn fails). Created with
    PutMetricAlarm in moto's CloudWatch; Ref: the alarm name; GetAtt Arn."""

    resource_type = "AWS::CloudWatch::Alarm"
    support = "created"

    def _put(self, request: Request, name: str) -> Any:
        p = request.properties
        return backend(request).put_metric_alarm(
            name=name, namespace=p.get("Namespace"), metric_name=p.get("MetricName"),
            comparison_operator=p.get("ComparisonOperator"), evaluation_periods=int(p.get("EvaluationPeriods", 1)),
            period=int(p["Period"]) if p.get("Period") else None,
            threshold=float(p["Threshold"]) if p.get("Threshold") is not None else None,
            statistic=p.get("Statistic"), description=p.get("AlarmDescription"),
            dimensions=[{"Name": d["Name"], "Value": d["Value"]} for d in p.get("Dimensions", [])],
            alarm_actions=p.get("AlarmActions", []), metric_data_queries=_queries(p.get("Metrics") or []),
            datapoints_to_alarm=int(p["DatapointsToAlarm"]) if p.get("DatapointsToAlarm") else None,
            extended_statistic=p.get("ExtendedStatistic"), ok_actions=p.get("OKActions", []),
            insufficient_data_actions=p.get("InsufficientDataActions", []), unit=p.get("Unit"),
            actions_enabled=str(p.get("ActionsEnabled", True)).lower() == "true",
            treat_missing_data=p.get("TreatMissingData"),
            evaluate_low_sample_count_percentile=p.get("EvaluateLowSampleCountPercentile"),
            threshold_metric_id=p.get("ThresholdMetricId"), tags=p.get("Tags") or [],
        )

    def create(self, request: Request) -> State:
        name = request.properties.get("AlarmName") or request.physical_name
        alarm = self._put(request, name)
        return State(physical_id=name, attributes={"Arn": alarm.alarm_arn})

    def update(self, request: Request, state: State, old_properties: dict) -> State:
        self._put(request, state.physical_id)
        return state

    def delete(self, request: Request, state: State) -> None:
        backend(request).delete_alarms([state.physical_id])


class CompositeAlarmProvider(AlarmProvider):
    """moto gap: AWS::CloudWatch::CompositeAlarm has no model. moto's CloudWatch keeps a composite
    alarm as an alarm with a rule (PutCompositeAlarm; DescribeAlarms lists it under
    CompositeAlarms), so it is created that way; Ref: the alarm name; GetAtt Arn. The alarms its
    rule names must exist, as CloudWatch requires (hence the template's DependsOn). Create,
    update and delete are the metric alarm's."""

    resource_type = "AWS::CloudWatch::CompositeAlarm"
    support = "created"

    def _put(self, request: Request, name: str) -> Any:
        p = request.properties
        missing = [alarm for alarm in _rule_alarms(p["AlarmRule"]) if alarm not in backend(request).alarms]
        if missing:
            raise ResourceFailure(f"AlarmRule names alarms that do not exist: {', '.join(missing)}")
        return backend(request).put_metric_alarm(
            name=name, namespace=None, metric_name=None, comparison_operator=None, evaluation_periods=None,
            period=None, threshold=None, statistic=None, description=p.get("AlarmDescription"), dimensions=[],
            alarm_actions=p.get("AlarmActions", []), ok_actions=p.get("OKActions", []),
            insufficient_data_actions=p.get("InsufficientDataActions", []),
            actions_enabled=str(p.get("ActionsEnabled", True)).lower() == "true", rule=p["AlarmRule"],
            tags=p.get("Tags") or [],
        )


def _rule_alarms(rule: str) -> list[str]:
    """The alarm names (or ARNs' names) an AlarmRule's ALARM(...)/OK(...)/INSUFFICIENT_DATA(...) name."""
    names = re.findall(r'(?:ALARM|OK|INSUFFICIENT_DATA)\(\s*"?([^")]+?)"?\s*\)', rule)
    return [name.split(":alarm:", 1)[-1] for name in names]


def apply() -> None:
    register(AlarmProvider())
    register(CompositeAlarmProvider())

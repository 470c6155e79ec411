"""messaging layer: the work queues with their dead-letter queues (one row each in QUEUES), and
the SNS topics.

Design decisions:
- Queues are rows of `QUEUES`, built by one loop (queue, DLQ, TLS-only policy, exports); the
  function catalogue (`templates_src/resources.py`) makes each row usable by functions as
  `uses: {<name>: send}` or an sqs trigger, and monitoring derives each row's alarms.
- A queue's visibility timeout is 6x the longest timeout of the functions whose sqs trigger
  names it (AWS's guidance for Lambda event sources: the function may be retried within one
  visibility window), read from their `function.yaml`, so changing a consumer changes the
  queue. A queue no function consumes is refused: nothing would ever drain it.
- A message that fails `max_receives` receives moves to the DLQ, which keeps it 14 days (the SQS
  maximum) and accepts redrives from its queue only.
- Queue and topic policies grant nothing to anyone but CloudWatch (publishing alarms, only for
  this account). They deny every request without TLS; the same account's IAM policies grant
  the rest.
- Everything is encrypted with the security layer's data key. The data key's policy must let
  cloudwatch.amazonaws.com use it, or alarms cannot publish to the encrypted alarm topic.
- The email subscription to the alarm topic must be confirmed by its recipient after deploy.
  What the topic cannot deliver goes to an encrypted dead-letter queue; a subscription still
  waiting for its confirmation is counted every hour into a metric (an express workflow of two
  SDK calls, no code); the monitoring layer alarms on both (PCI DSS 10.7).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import awacs.cloudwatch as cloudwatch_actions
import awacs.sns as sns_actions
import awacs.sqs as sqs_actions
import awacs.states as states_actions
from awacs.aws import Allow, ArnEquals, Condition, Policy, Statement, StringEquals
from troposphere import GetAtt, Ref, Template, events, iam, sns, sqs, stepfunctions

from .blocks import (
    SQS_KMS_DATA_KEY_REUSE_S,
    SQS_MAX_RETENTION_S,
    deny_insecure_transport,
    log_group,
    queue_with_dead_letters,
    service_resource_statement,
    service_trust,
    vended_logs_statements,
)
from .common import (
    CONFIRMED_SUBSCRIPTIONS_METRIC,
    OPERATIONS_NAMESPACE,
    arn,
    export,
    ignore_cfn_lint,
    import_value,
    keep_data,
    new_template,
    resource_name,
    tags,
)
from .config import EnvironmentConfig

LAYER = "messaging"

VISIBILITY_TIMEOUT_FACTOR = 6
MAX_VISIBILITY_TIMEOUT_S = 12 * 60 * 60  # SQS upper bound
WATCH_SCHEDULE = "rate(1 hour)"
DAY_S = 24 * 60 * 60


@dataclass(frozen=True)
class Queue:
    """One work queue and its dead-letter queue.

    `name` is what functions write: `uses: {payment_queue: send}` (the URL arrives in
    `<NAME>_URL`) or `triggers: [{type: sqs, queue: payment_queue}]`. `stem` names the logical ids
    and exports (`<stem>Queue`, `<stem>Dlq`, `<stem>QueueUrl|Arn|Name`, `<stem>DlqUrl|Arn|Name`);
    `purpose` the queues (`payments-<env>-<purpose>` and `...-<purpose>-dlq`). Monitoring alarms
    when the DLQ holds a message and, where set, when the oldest message is older than
    `oldest_message_alarm_s` or more than `depth_alarm` messages wait."""

    name: str
    stem: str
    purpose: str
    description: str
    retention_s: int
    max_receives: int = 3
    oldest_message_alarm_s: int | None = None
    depth_alarm: int | None = None

    @property
    def variable(self) -> str:
        return f"{self.name.upper()}_URL"

    def export_key(self, which: str, attribute: str) -> str:
        """`which` is "Queue" or "Dlq", `attribute` "Url", "Arn" or "Name"."""
        return f"{self.stem}{which}{attribute}"


QUEUES = (
    Queue(
        "payment_queue", "Payment", "payments", "approved payments waiting for settlement",
        retention_s=4 * DAY_S,
        # Settlement normally follows approval within seconds; half an hour means the worker
        # is not draining the queue (failing messages reach the DLQ within 3 visibility windows).
        oldest_message_alarm_s=30 * 60,
    ),
)


class QueueError(ValueError):
    """A queue row cannot be built as declared (reported by the build as bad input)."""


def consumer_timeouts_s() -> dict[str, int]:
    """Queue name -> the longest timeout of the functions whose sqs trigger names it."""
    from .function_catalog import load_functions  # the catalogue reads QUEUES: import late

    timeouts: dict[str, int] = {}
    for declaration in load_functions():
        for trigger in declaration.triggers:
            if trigger.type == "sqs":
                timeouts[trigger.queue] = max(timeouts.get(trigger.queue, 0), declaration.timeout_s)
    return timeouts


def visibility_timeout_s(queue: Queue, consumer_timeout_s: int | None) -> int:
    if consumer_timeout_s is None:
        raise QueueError(f"messaging.QUEUES {queue.name}: no function has an sqs trigger on it, nothing would "
                         "drain it (add `triggers: [{type: sqs, queue: " + queue.name + "}]` to its consumer)")
    timeout = VISIBILITY_TIMEOUT_FACTOR * consumer_timeout_s
    if timeout > MAX_VISIBILITY_TIMEOUT_S:
        raise QueueError(
            f"messaging.QUEUES {queue.name}: consumer timeout {consumer_timeout_s}s needs a visibility timeout "
            f"of {timeout}s, above the SQS maximum of {MAX_VISIBILITY_TIMEOUT_S}s"
        )
    return timeout


def build(config: EnvironmentConfig, consumer_timeouts: Mapping[str, int] | None = None,
          queues: tuple[Queue, ...] = QUEUES) -> Template:
    """`consumer_timeouts` (queue name -> seconds) and `queues` replace the declared ones (tests only)."""
    template = new_template(config, LAYER, "work queues, dead-letter queues and SNS topics")
    timeouts = consumer_timeouts_s() if consumer_timeouts is None else consumer_timeouts
    for queue in queues:
        _queue(template, config, queue, visibility_timeout_s(queue, timeouts.get(queue.name)))
    _topics(template, config)
    return template


# --- SQS ----------------------------------------------------------------------------------------


def _queue(template: Template, config: EnvironmentConfig, queue: Queue, visibility_timeout: int) -> None:
    work, dead_letters = queue_with_dead_letters(
        template, config, queue.stem, queue.purpose, import_value(config, "security", "DataKeyArn"),
        visibility_timeout_s=visibility_timeout, retention_s=queue.retention_s, max_receives=queue.max_receives,
    )
    for which, resource in (("Queue", work), ("Dlq", dead_letters)):
        what = f"{queue.stem}{which}"
        export(template, config, LAYER, queue.export_key(which, "Url"), Ref(resource), f"{what} URL")
        export(template, config, LAYER, queue.export_key(which, "Arn"), GetAtt(resource, "Arn"), f"{what} ARN")
        export(template, config, LAYER, queue.export_key(which, "Name"), GetAtt(resource, "QueueName"), f"{what} name")


# --- SNS ----------------------------------------------------------------------------------------


def _deny_without_tls(topic: sns.Topic) -> Statement:
    return deny_insecure_transport([sns_actions.Publish, sns_actions.Subscribe], [Ref(topic)])


def _topic(template: Template, config: EnvironmentConfig, logical_id: str, purpose: str, display: str) -> sns.Topic:
    name = resource_name(config, purpose)
    return template.add_resource(
        sns.Topic(
            logical_id,
            TopicName=name,
            DisplayName=display,
            KmsMasterKeyId=import_value(config, "security", "DataKeyArn"),
            Tags=tags(config, name),
        )
    )


def _topics(template: Template, config: EnvironmentConfig) -> None:
    notifications = _topic(
        template, config, "PaymentNotificationsTopic", "payment-notifications", f"Payments {config.name}"
    )
    alarms = _topic(template, config, "AlarmTopic", "alarms", f"Payments {config.name} alarms")
    template.add_resource(
        sns.TopicPolicy(
            "PaymentNotificationsTopicPolicy",
            Topics=[Ref(notifications)],
            PolicyDocument=Policy(Version="2012-10-17", Statement=[_deny_without_tls(notifications)]),
        )
    )
    template.add_resource(
        sns.TopicPolicy(
            "AlarmTopicPolicy",
            Topics=[Ref(alarms)],
            PolicyDocument=Policy(
                Version="2012-10-17",
                Statement=[
                    service_resource_statement(
                        "CloudWatchAlarmsOfThisAccount", "cloudwatch.amazonaws.com", [sns_actions.Publish],
                        Ref(alarms), Condition(StringEquals("aws:SourceAccount", Ref("AWS::AccountId")))),
                    _deny_without_tls(alarms),
                ],
            ),
        )
    )
    undelivered = _alarm_dead_letters(template, config, alarms)
    template.add_resource(
        sns.SubscriptionResource(
            "AlarmEmailSubscription",
            TopicArn=Ref(alarms),
            Protocol="email",
            Endpoint=config.monitoring.alarm_email,
            # A notification SNS cannot deliver lands here instead of vanishing (PCI DSS 10.7).
            RedrivePolicy={"deadLetterTargetArn": GetAtt(undelivered, "Arn")},
        )
    )
    _confirmed_subscriptions_watch(template, config, alarms)
    export(template, config, LAYER, "PaymentNotificationsTopicArn", Ref(notifications), "payment notifications topic")
    export(template, config, LAYER, "AlarmTopicArn", Ref(alarms), "alarm topic")
    export(template, config, LAYER, "AlarmTopicName", GetAtt(alarms, "TopicName"), "alarm topic name (metrics dimension)")
    export(template, config, LAYER, "AlarmDlqName", GetAtt(undelivered, "QueueName"), "undelivered alarm notifications")


# --- alarm delivery: nothing the alarm topic cannot deliver goes unnoticed --------------------------


def _alarm_dead_letters(template: Template, config: EnvironmentConfig, alarms: sns.Topic) -> sqs.Queue:
    """The alarm subscription's dead-letter queue: encrypted with the data key (whose policy lets
    SNS use it for this environment's topics), writable by SNS for the alarm topic only."""
    name = resource_name(config, "alarm-dlq")
    queue = template.add_resource(
        keep_data(
            sqs.Queue(
                "AlarmDlq",
                QueueName=name,
                MessageRetentionPeriod=SQS_MAX_RETENTION_S,
                KmsMasterKeyId=import_value(config, "security", "DataKeyArn"),
                KmsDataKeyReusePeriodSeconds=SQS_KMS_DATA_KEY_REUSE_S,
                Tags=tags(config, name),
            ),
            config,
        )
    )
    template.add_resource(
        sqs.QueuePolicy(
            "AlarmDlqPolicy",
            Queues=[Ref(queue)],
            PolicyDocument=Policy(
                Version="2012-10-17",
                Statement=[
                    service_resource_statement(
                        "AlarmTopicDeadLetters", "sns.amazonaws.com", [sqs_actions.SendMessage],
                        GetAtt(queue, "Arn"), Condition(ArnEquals("aws:SourceArn", Ref(alarms)))),
                    deny_insecure_transport([sqs_actions.Action("*")], [GetAtt(queue, "Arn")]),
                ],
            ),
        )
    )
    return queue


def _confirmed_subscriptions_watch(template: Template, config: EnvironmentConfig, alarms: sns.Topic) -> None:
    """A dead-letter queue never sees a subscription still waiting for its confirmation: every
    hour a small express workflow (two SDK calls, no code) publishes the alarm topic's number of
    confirmed subscriptions as a metric, and the monitoring layer alarms when it is 0."""
    name = resource_name(config, "alarm-subscriptions-watch")
    logs_group = log_group(template, config, "AlarmWatchLogGroup", f"/aws/vendedlogs/states/{name}",
                           import_value(config, "security", "LogsKeyArn"))
    role = template.add_resource(iam.Role(
        "AlarmWatchRole",
        Description="Counts the alarm topic's confirmed subscriptions into a metric",
        AssumeRolePolicyDocument=service_trust("states.amazonaws.com",
                                               arn("states", f"stateMachine:{name}")),
        Policies=[iam.Policy(PolicyName="watch", PolicyDocument=Policy(Version="2012-10-17", Statement=[
            Statement(Sid="ReadTopic", Effect=Allow, Action=[sns_actions.GetTopicAttributes], Resource=[Ref(alarms)]),
            Statement(
                Sid="PublishMetric", Effect=Allow, Action=[cloudwatch_actions.PutMetricData],
                # PutMetricData has no resource-level permissions: "*" narrowed to one namespace.
                Resource=["*"],
                Condition=Condition(StringEquals("cloudwatch:namespace", OPERATIONS_NAMESPACE)),
            ),
            *vended_logs_statements(),
        ]))],
        Tags=tags(config),
    ))
    machine = template.add_resource(stepfunctions.StateMachine(
        "AlarmWatch",
        StateMachineName=name,
        StateMachineType="EXPRESS",
        RoleArn=GetAtt(role, "Arn"),
        Definition=_watch_definition(),
        DefinitionSubstitutions={"Topic": Ref(alarms), "TopicName": GetAtt(alarms, "TopicName"),
                                 "Namespace": OPERATIONS_NAMESPACE, "Metric": CONFIRMED_SUBSCRIPTIONS_METRIC,
                                 "Partition": Ref("AWS::Partition")},
        LoggingConfiguration=stepfunctions.LoggingConfiguration(
            Level="ERROR", IncludeExecutionData=False,
            Destinations=[stepfunctions.LogDestination(
                CloudWatchLogsLogGroup=stepfunctions.CloudWatchLogsLogGroup(LogGroupArn=GetAtt(logs_group, "Arn")))],
        ),
        TracingConfiguration=stepfunctions.TracingConfiguration(Enabled=True),
        Tags=tags(config, name),
    ))
    ignore_cfn_lint(machine, "E3601", "its ASL schema accepts only the literal aws partition in ARNs; the "
                                      "integration ARNs carry the stack's partition through a substitution")
    _every_hour(template, config, machine, name)


def _watch_definition() -> dict:
    return {
        "Comment": "Publish the number of confirmed subscriptions of the alarm topic",
        "StartAt": "ReadTopic",
        "States": {
            "ReadTopic": {
                "Type": "Task",
                "Resource": "arn:${Partition}:states:::aws-sdk:sns:getTopicAttributes",
                "Parameters": {"TopicArn": "${Topic}"},
                "ResultSelector": {"confirmed.$": "States.StringToJson($.Attributes.SubscriptionsConfirmed)"},
                "Next": "PublishMetric",
            },
            "PublishMetric": {
                "Type": "Task",
                "Resource": "arn:${Partition}:states:::aws-sdk:cloudwatch:putMetricData",
                "Parameters": {
                    "Namespace": "${Namespace}",
                    "MetricData": [{"MetricName": "${Metric}", "Unit": "Count", "Value.$": "$.confirmed",
                                    "Dimensions": [{"Name": "TopicName", "Value": "${TopicName}"}]}],
                },
                "End": True,
            },
        },
    }


def _every_hour(template: Template, config: EnvironmentConfig, machine, name: str) -> None:
    role = template.add_resource(iam.Role(
        "AlarmWatchScheduleRole",
        Description="Lets the hourly schedule start the alarm subscriptions watch",
        AssumeRolePolicyDocument=service_trust("events.amazonaws.com",
                                               arn("events", f"rule/{name}")),
        Policies=[iam.Policy(PolicyName="start", PolicyDocument=Policy(Version="2012-10-17", Statement=[
            Statement(Effect=Allow, Action=[states_actions.StartExecution], Resource=[Ref(machine)]),
        ]))],
        Tags=tags(config),
    ))
    template.add_resource(events.Rule(
        "AlarmWatchSchedule",
        Name=name,
        Description="Hourly: count the alarm topic's confirmed subscriptions",
        ScheduleExpression=WATCH_SCHEDULE,
        State="ENABLED",
        Targets=[events.Target(Id="watch", Arn=Ref(machine), RoleArn=GetAtt(role, "Arn"))],
        Tags=tags(config),
    ))

"""messaging layer: the payment queue with its dead-letter queue, and the SNS topics.

Design decisions:
- The payment queue's visibility timeout is 6x the queue worker's timeout (AWS's guidance for
  Lambda event sources: the function may be retried within one visibility window). The timeout
  is read from `functions/queue_worker/function.yaml` through function_catalog, so changing the
  function changes the queue.
- A message that fails 3 receives moves to the DLQ, which keeps it 14 days (the SQS maximum)
  and accepts redrives from the payment queue only.
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

import awacs.cloudwatch as cloudwatch_actions
import awacs.sns as sns_actions
import awacs.sqs as sqs_actions
import awacs.states as states_actions
from awacs.aws import Allow, ArnEquals, Condition, Policy, Statement, StringEquals
from troposphere import GetAtt, Ref, Sub, Template, events, iam, sns, sqs, stepfunctions

from .blocks import deny_insecure_transport, log_group, service_resource_statement, service_trust, vended_logs_statements
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
from .function_catalog import load_functions

LAYER = "messaging"

QUEUE_WORKER = "queue_worker"
VISIBILITY_TIMEOUT_FACTOR = 6
MAX_VISIBILITY_TIMEOUT_S = 12 * 60 * 60  # SQS upper bound
MAX_RECEIVES_BEFORE_DLQ = 3
PAYMENT_RETENTION_S = 4 * 24 * 60 * 60
DLQ_RETENTION_S = 14 * 24 * 60 * 60  # SQS maximum
LONG_POLL_WAIT_S = 20
KMS_DATA_KEY_REUSE_S = 300
WATCH_SCHEDULE = "rate(1 hour)"


class QueueWorkerMissing(LookupError):
    """The queue's visibility timeout depends on a function that is not declared."""


def queue_worker_timeout_s() -> int:
    for declaration in load_functions():
        if declaration.name == QUEUE_WORKER:
            return declaration.timeout_s
    raise QueueWorkerMissing(
        f"functions/{QUEUE_WORKER}/function.yaml is missing: the payment queue's visibility timeout "
        f"is {VISIBILITY_TIMEOUT_FACTOR}x that function's timeout"
    )


def visibility_timeout_s(worker_timeout_s: int) -> int:
    timeout = VISIBILITY_TIMEOUT_FACTOR * worker_timeout_s
    if timeout > MAX_VISIBILITY_TIMEOUT_S:
        raise ValueError(
            f"{QUEUE_WORKER} timeout {worker_timeout_s}s needs a visibility timeout of {timeout}s, "
            f"above the SQS maximum of {MAX_VISIBILITY_TIMEOUT_S}s"
        )
    return timeout


def build(config: EnvironmentConfig, worker_timeout_s: int | None = None) -> Template:
    """`worker_timeout_s` overrides the declared queue worker timeout (tests only)."""
    template = new_template(config, LAYER, "payment queue, dead-letter queue and SNS topics")
    timeout = visibility_timeout_s(worker_timeout_s if worker_timeout_s is not None else queue_worker_timeout_s())
    _queues(template, config, timeout)
    _topics(template, config)
    return template


# --- SQS ----------------------------------------------------------------------------------------


def _queue_arn(name: str) -> Sub:
    return Sub(f"arn:${{AWS::Partition}}:sqs:${{AWS::Region}}:${{AWS::AccountId}}:{name}")


def _queues(template: Template, config: EnvironmentConfig, visibility_timeout: int) -> None:
    data_key = import_value(config, "security", "DataKeyArn")
    queue_name = resource_name(config, "payments")
    dlq_name = resource_name(config, "payments-dlq")
    dlq = sqs.Queue(
        "PaymentDlq",
        QueueName=dlq_name,
        MessageRetentionPeriod=DLQ_RETENTION_S,
        KmsMasterKeyId=data_key,
        KmsDataKeyReusePeriodSeconds=KMS_DATA_KEY_REUSE_S,
        # The payment queue's ARN is built from its name: a GetAtt would be a cycle (it names us).
        RedriveAllowPolicy={"redrivePermission": "byQueue", "sourceQueueArnList": [_queue_arn(queue_name)]},
        Tags=tags(config, dlq_name),
    )
    template.add_resource(keep_data(dlq, config))
    queue = sqs.Queue(
        "PaymentQueue",
        QueueName=queue_name,
        VisibilityTimeout=visibility_timeout,
        MessageRetentionPeriod=PAYMENT_RETENTION_S,
        ReceiveMessageWaitTimeSeconds=LONG_POLL_WAIT_S,
        KmsMasterKeyId=data_key,
        KmsDataKeyReusePeriodSeconds=KMS_DATA_KEY_REUSE_S,
        RedrivePolicy=sqs.RedrivePolicy(
            deadLetterTargetArn=GetAtt(dlq, "Arn"), maxReceiveCount=MAX_RECEIVES_BEFORE_DLQ
        ),
        Tags=tags(config, queue_name),
    )
    template.add_resource(keep_data(queue, config))
    template.add_resource(
        sqs.QueuePolicy(
            "PaymentQueuesPolicy",
            Queues=[Ref(queue), Ref(dlq)],
            PolicyDocument=Policy(
                Version="2012-10-17",
                Statement=[
                    deny_insecure_transport([sqs_actions.Action("*")], [GetAtt(queue, "Arn"), GetAtt(dlq, "Arn")])
                ],
            ),
        )
    )
    for key, resource in (("PaymentQueue", queue), ("PaymentDlq", dlq)):
        export(template, config, LAYER, f"{key}Url", Ref(resource), f"{key} URL")
        export(template, config, LAYER, f"{key}Arn", GetAtt(resource, "Arn"), f"{key} ARN")
        export(template, config, LAYER, f"{key}Name", GetAtt(resource, "QueueName"), f"{key} name")


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
                MessageRetentionPeriod=DLQ_RETENTION_S,
                KmsMasterKeyId=import_value(config, "security", "DataKeyArn"),
                KmsDataKeyReusePeriodSeconds=KMS_DATA_KEY_REUSE_S,
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

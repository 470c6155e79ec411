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
"""
from __future__ import annotations

import awacs.sns as sns_actions
import awacs.sqs as sqs_actions
from awacs.aws import Allow, Condition, Policy, Principal, Statement, StringEquals
from troposphere import GetAtt, Ref, Sub, Template, sns, sqs

from .blocks import deny_insecure_transport
from .common import export, import_value, keep_data, new_template, resource_name, tags
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
                    Statement(
                        Sid="CloudWatchAlarmsOfThisAccount",
                        Effect=Allow,
                        Principal=Principal("Service", "cloudwatch.amazonaws.com"),
                        Action=[sns_actions.Publish],
                        Resource=[Ref(alarms)],
                        Condition=Condition(StringEquals("aws:SourceAccount", Ref("AWS::AccountId"))),
                    ),
                    _deny_without_tls(alarms),
                ],
            ),
        )
    )
    template.add_resource(
        sns.SubscriptionResource(
            "AlarmEmailSubscription",
            TopicArn=Ref(alarms),
            Protocol="email",
            Endpoint=config.monitoring.alarm_email,
        )
    )
    export(template, config, LAYER, "PaymentNotificationsTopicArn", Ref(notifications), "payment notifications topic")
    export(template, config, LAYER, "AlarmTopicArn", Ref(alarms), "alarm topic")

"""messaging layer: payment queue + DLQ (KMS, redrive), SNS topics (KMS, TLS-only), alarm email."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from templates_src import messaging
from templates_src.config import load_environment
from templates_src.function_catalog import load_functions

from .helpers import assert_data_policy, exports_contract

ROOT = Path(__file__).resolve().parents[2]
ENVIRONMENTS = ("dev", "staging", "prod")


def built_dict(env: str, worker_timeout_s: int | None = None) -> dict:
    timeouts = None if worker_timeout_s is None else {"payment_queue": worker_timeout_s}
    return json.loads(messaging.build(load_environment(env), timeouts).to_json())


@pytest.fixture(scope="module")
def built() -> dict[str, tuple]:
    return {env: (load_environment(env), built_dict(env)) for env in ENVIRONMENTS}


def test_visibility_timeout_is_six_times_the_declared_worker_timeout(built):
    consumers = {d.name: d.timeout_s for d in load_functions()
                 if any(t.type == "sqs" and t.queue == "payment_queue" for t in d.triggers)}
    assert set(consumers) == {"queue_worker"}, "functions/queue_worker/function.yaml must consume the payment queue"
    for _, template in built.values():
        queue = template["Resources"]["PaymentQueue"]["Properties"]
        assert queue["VisibilityTimeout"] == 6 * consumers["queue_worker"]


@pytest.mark.parametrize("worker_timeout, expected", [(1, 6), (45, 270), (900, 5400)])
def test_visibility_timeout_follows_the_worker(worker_timeout, expected):
    template = built_dict("dev", worker_timeout)
    assert template["Resources"]["PaymentQueue"]["Properties"]["VisibilityTimeout"] == expected


def test_a_worker_too_slow_for_sqs_is_refused():
    with pytest.raises(messaging.QueueError, match="payment_queue: consumer timeout 7201s .* above the SQS maximum"):
        messaging.visibility_timeout_s(messaging.QUEUES[0], 7201)


def test_a_queue_no_function_consumes_is_refused():
    with pytest.raises(messaging.QueueError, match="QUEUES payment_queue: no function has an sqs trigger on it"):
        messaging.build(load_environment("dev"), {})


REFUNDS = messaging.Queue("refund_queue", "Refund", "refunds", "refunds waiting for the processor",
                          retention_s=86400, max_receives=5, oldest_message_alarm_s=600, depth_alarm=1000)


def test_a_queue_row_gives_queue_dlq_policy_and_exports():
    """Adding a queue is one row of QUEUES: the loop builds the rest."""
    template = json.loads(messaging.build(load_environment("staging"), {"payment_queue": 60, "refund_queue": 30},
                                          (*messaging.QUEUES, REFUNDS)).to_json())
    resources = template["Resources"]
    queue, dlq = resources["RefundQueue"]["Properties"], resources["RefundDlq"]["Properties"]
    assert queue["QueueName"] == "payments-staging-refunds" and dlq["QueueName"] == "payments-staging-refunds-dlq"
    assert queue["VisibilityTimeout"] == 180 and queue["MessageRetentionPeriod"] == 86400
    assert queue["RedrivePolicy"] == {"deadLetterTargetArn": {"Fn::GetAtt": ["RefundDlq", "Arn"]}, "maxReceiveCount": 5}
    assert queue["KmsMasterKeyId"] == dlq["KmsMasterKeyId"] == {"Fn::ImportValue": "payments-staging-security-DataKeyArn"}
    assert resources["RefundQueuesPolicy"]["Properties"]["Queues"] == [{"Ref": "RefundQueue"}, {"Ref": "RefundDlq"}]
    assert_data_policy(resources["RefundQueue"], "staging")
    assert {f"Refund{which}{attribute}" for which in ("Queue", "Dlq") for attribute in ("Url", "Arn", "Name")} <= set(
        template["Outputs"])


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_failed_messages_move_to_a_14_day_dlq_after_3_receives(built, env):
    _, template = built[env]
    queue = template["Resources"]["PaymentQueue"]["Properties"]
    dlq = template["Resources"]["PaymentDlq"]["Properties"]
    dlq_arn = {"Fn::GetAtt": ["PaymentDlq", "Arn"]}
    assert queue["RedrivePolicy"] == {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 3}
    assert dlq["MessageRetentionPeriod"] == 14 * 24 * 3600
    assert dlq["RedriveAllowPolicy"]["redrivePermission"] == "byQueue"
    (source,) = dlq["RedriveAllowPolicy"]["sourceQueueArnList"]
    assert source["Fn::Sub"].endswith(f":{queue['QueueName']}")
    assert queue["QueueName"] == f"payments-{env}-payments" and dlq["QueueName"] == f"payments-{env}-payments-dlq"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_queues_and_topics_use_the_data_key(built, env):
    _, template = built[env]
    key = {"Fn::ImportValue": f"payments-{env}-security-DataKeyArn"}
    for logical_id in ("PaymentQueue", "PaymentDlq", "PaymentNotificationsTopic", "AlarmTopic"):
        assert template["Resources"][logical_id]["Properties"]["KmsMasterKeyId"] == key, logical_id


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_queues_keep_data_as_the_environment_says(built, env):
    _, template = built[env]
    for logical_id in ("PaymentQueue", "PaymentDlq"):
        assert_data_policy(template["Resources"][logical_id], env, logical_id)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_queue_policy_only_refuses_plain_http(built, env):
    _, template = built[env]
    policy = template["Resources"]["PaymentQueuesPolicy"]["Properties"]
    assert policy["Queues"] == [{"Ref": "PaymentQueue"}, {"Ref": "PaymentDlq"}]
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Deny"
    assert statement["Condition"]["Bool"]["aws:SecureTransport"] in (False, "false")


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_only_cloudwatch_of_this_account_may_publish_alarms(built, env):
    _, template = built[env]
    statements = template["Resources"]["AlarmTopicPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    allows = [s for s in statements if s["Effect"] == "Allow"]
    assert allows == [
        {
            "Sid": "CloudWatchAlarmsOfThisAccount",
            "Effect": "Allow",
            "Principal": {"Service": "cloudwatch.amazonaws.com"},
            "Action": ["sns:Publish"],
            "Resource": [{"Ref": "AlarmTopic"}],
            "Condition": {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}},
        }
    ]
    for logical_id in ("AlarmTopicPolicy", "PaymentNotificationsTopicPolicy"):
        document = template["Resources"][logical_id]["Properties"]["PolicyDocument"]
        denies = [s for s in document["Statement"] if s["Effect"] == "Deny"]
        assert denies and denies[0]["Condition"]["Bool"]["aws:SecureTransport"] in (False, "false")
    notifications = template["Resources"]["PaymentNotificationsTopicPolicy"]["Properties"]["PolicyDocument"]
    assert all(s["Effect"] == "Deny" for s in notifications["Statement"])


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_alarm_email_comes_from_the_parameters(built, env):
    config, template = built[env]
    subscription = template["Resources"]["AlarmEmailSubscription"]["Properties"]
    assert subscription == {
        "Protocol": "email",
        "Endpoint": config.monitoring.alarm_email,
        "TopicArn": {"Ref": "AlarmTopic"},
        "RedrivePolicy": {"deadLetterTargetArn": {"Fn::GetAtt": ["AlarmDlq", "Arn"]}},
    }


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_undelivered_alarms_land_in_an_encrypted_queue_only_the_alarm_topic_writes(built, env):
    _, template = built[env]
    queue = template["Resources"]["AlarmDlq"]["Properties"]
    assert queue["KmsMasterKeyId"] == {"Fn::ImportValue": f"payments-{env}-security-DataKeyArn"}
    assert queue["MessageRetentionPeriod"] == 14 * 24 * 3600
    allow, deny = template["Resources"]["AlarmDlqPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert allow["Principal"] == {"Service": "sns.amazonaws.com"} and allow["Action"] == ["sqs:SendMessage"]
    assert allow["Condition"] == {"ArnEquals": {"aws:SourceArn": {"Ref": "AlarmTopic"}}}
    assert deny["Sid"] == "DenyInsecureTransport"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_confirmed_alarm_subscriptions_are_counted_every_hour_without_code(built, env):
    _, template = built[env]
    machine = template["Resources"]["AlarmWatch"]["Properties"]
    assert machine["StateMachineType"] == "EXPRESS"
    states = machine["Definition"]["States"]
    assert states["ReadTopic"]["Resource"] == "arn:${Partition}:states:::aws-sdk:sns:getTopicAttributes"
    metric = states["PublishMetric"]["Parameters"]["MetricData"][0]
    assert metric["Value.$"] == "$.confirmed" and metric["MetricName"] == "${Metric}"
    assert machine["DefinitionSubstitutions"]["Metric"] == "ConfirmedAlarmSubscriptions"
    rule = template["Resources"]["AlarmWatchSchedule"]["Properties"]
    assert rule["ScheduleExpression"] == "rate(1 hour)" and rule["Targets"][0]["Arn"] == {"Ref": "AlarmWatch"}
    role = template["Resources"]["AlarmWatchRole"]["Properties"]
    by_sid = {s["Sid"]: s for s in role["Policies"][0]["PolicyDocument"]["Statement"]}
    assert by_sid["ReadTopic"]["Resource"] == [{"Ref": "AlarmTopic"}]
    assert by_sid["PublishMetric"]["Condition"] == {"StringEquals": {"cloudwatch:namespace": "Payments/Operations"}}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_exports_and_imports_follow_the_contract(built, env):
    _, template = built[env]
    assert set(template["Outputs"]) == exports_contract("messaging")
    for key, output in template["Outputs"].items():
        assert output["Export"]["Name"] == f"payments-{env}-messaging-{key}"
    imports = {json.dumps(v) for v in _imports(template["Resources"])}
    # the data key encrypts queues and topics; the logs key the alarm watch's log group
    assert imports == {json.dumps(f"payments-{env}-security-{key}") for key in ("DataKeyArn", "LogsKeyArn")}


def _imports(node):
    if isinstance(node, dict):
        if "Fn::ImportValue" in node:
            yield node["Fn::ImportValue"]
        for value in node.values():
            yield from _imports(value)
    elif isinstance(node, list):
        for value in node:
            yield from _imports(value)


def test_a_missing_queue_worker_is_a_clear_error(monkeypatch):
    from templates_src import function_catalog
    monkeypatch.setattr(function_catalog, "load_functions", lambda: [])
    with pytest.raises(messaging.QueueError, match="payment_queue: no function has an sqs trigger on it"):
        messaging.build(load_environment("dev"))

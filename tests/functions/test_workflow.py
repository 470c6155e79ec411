"""The Step Functions definition and the functions its task states call."""
from __future__ import annotations

import json

import pytest
from paylib import repository

from tests.functions.conftest import FUNCTIONS, api_event, load_app, new_key, payment_body

DEFINITION = json.loads((FUNCTIONS / "workflow.asl.json").read_text(encoding="utf-8"))


def successors(state: dict) -> list[str]:
    targets = [state.get("Next"), state.get("Default")]
    targets += [choice.get("Next") for choice in state.get("Choices", [])]
    targets += [catch.get("Next") for catch in state.get("Catch", [])]
    return [target for target in targets if target]


def test_every_next_exists_and_every_state_is_reachable():
    states = DEFINITION["States"]
    assert DEFINITION["StartAt"] in states
    for name, state in states.items():
        for target in successors(state):
            assert target in states, f"{name} -> {target} does not exist"
        if state["Type"] not in ("Succeed", "Fail", "Choice"):
            assert "Next" in state or state.get("End") is True, f"{name} neither ends nor continues"
    reached, frontier = set(), [DEFINITION["StartAt"]]
    while frontier:
        name = frontier.pop()
        if name not in reached:
            reached.add(name)
            frontier.extend(successors(states[name]))
    assert reached == set(states)


def test_task_states_call_existing_functions_and_the_topic():
    functions = {path.name for path in FUNCTIONS.iterdir() if (path / "app.py").exists()}
    named = set()
    for state in DEFINITION["States"].values():
        if state["Type"] != "Task":
            continue
        if state["Resource"] == "arn:aws:states:::lambda:invoke":
            name = state["Parameters"]["FunctionName"]
            assert name.startswith("${") and name.endswith("}")
            named.add(name[2:-1])
            assert state["Parameters"]["Payload.$"] == "$"
        else:
            assert state["Resource"] == "arn:aws:states:::sns:publish"
            assert state["Parameters"]["TopicArn"] == "${PaymentNotificationsTopicArn}"
    assert named <= functions
    assert named == {"validation", "fraud_screening", "transaction_processing"}


def test_process_retries_with_backoff_and_choice_covers_the_three_decisions():
    process = DEFINITION["States"]["Process"]
    retry = process["Retry"][0]
    assert "TransientError" in retry["ErrorEquals"] and retry["BackoffRate"] > 1 and retry["MaxAttempts"] >= 3
    decisions = {choice["StringEquals"] for choice in DEFINITION["States"]["Decision"]["Choices"]}
    assert decisions == {"approve", "review", "decline"}


def stored_payment(context, **overrides) -> dict:
    app = load_app("payment_api")
    answer = app.handler(api_event("POST", "/payments", body=payment_body(**overrides), headers={"Idempotency-Key": new_key()}), context)
    return json.loads(answer["body"])


def test_workflow_steps_on_a_review_payment(aws, context):
    payment = stored_payment(context, amount=2_000_000)
    assert payment["status"] == "review"
    validated = load_app("validation").handler({"payment_id": payment["payment_id"]}, context)
    assert validated == {"payment_id": payment["payment_id"], "status": "review"}
    screened = load_app("fraud_screening").handler(validated, context)
    assert screened["decision"] == "review" and screened["risk"]["reasons"] == ["HIGH_AMOUNT", "NEW_CUSTOMER_HIGH_AMOUNT"]
    processing = load_app("transaction_processing")
    result = processing.handler({**screened, "decision": "approve"}, context)
    assert result == {"payment_id": payment["payment_id"], "status": "approved"}
    assert processing.handler({**screened, "decision": "approve"}, context)["status"] == "approved"  # retry is harmless
    with pytest.raises(processing.PaymentStateError):
        processing.handler({**screened, "decision": "decline"}, context)  # approved cannot go back to declined
    assert repository.get(payment["payment_id"])["status"] == "approved"


def test_workflow_decline_and_invalid_inputs(aws, context):
    payment = stored_payment(context, amount=2_000_000)
    processing = load_app("transaction_processing")
    assert processing.handler({"payment_id": payment["payment_id"], "decision": "decline"}, context)["status"] == "declined"
    validation = load_app("validation")
    with pytest.raises(validation.PaymentInvalid):
        validation.handler({"payment_id": payment["payment_id"]}, context)
    with pytest.raises(validation.PaymentInvalid):
        validation.handler({"payment_id": "pay_" + "0" * 24}, context)
    with pytest.raises(validation.PaymentInvalid):
        validation.handler({}, context)
    with pytest.raises(processing.PaymentStateError):
        processing.handler({"payment_id": payment["payment_id"], "decision": "maybe"}, context)


def test_transient_aws_errors_become_transient_error(aws, context, monkeypatch):
    from botocore.exceptions import EndpointConnectionError
    from paylib import errors
    processing = load_app("transaction_processing")

    def unreachable(payment_id):
        raise EndpointConnectionError(endpoint_url="https://dynamodb")
    monkeypatch.setattr(repository, "get", unreachable)
    with pytest.raises(errors.TransientError):
        processing.handler({"payment_id": "pay_" + "0" * 24, "decision": "approve"}, context)

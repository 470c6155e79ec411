"""The deploy tool never ends in a traceback: each case below crashed or misled before its fix
(found against an emulator and by interrupting runs), and is reproduced here first."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
from synthetic_env import SyntheticEnvironment, run_deploy, standard_layers, virtual_context

import deploy
from deploylib import scheduler

ROOT = Path(__file__).resolve().parents[2]


def first_deploy(env, world, **kwargs):
    code, text = run_deploy(env, world, "deploy", "--yes", **kwargs)
    assert code == 0, text
    return text


# --- a change set that fails is a per-stack outcome, with its reason ------------------------------------


def test_a_change_set_that_fails_during_plan_is_a_review_entry_not_a_traceback(env, world):
    first_deploy(env, world)
    env.layers["security"].resources["Extra"] = {"Type": "AWS::SNS::Topic", "Properties": {}}
    env.write()
    world.change_set_failures[env.stack_name("security")] = "Template error: resource Key has an invalid policy"
    code, text = run_deploy(env, world, "plan")
    assert code == 1
    assert "Traceback" not in text
    assert ("payments-staging-security (eu-west-1): FAILED - change set failed: Template error: resource Key has\n"
            "    an invalid policy") in text  # wrapped at 100 columns
    assert "FAILED payments-staging-security: change set failed: Template error" in text
    review = {entry["stack"]: entry for entry in json.loads((env.build_dir / "staging" / "review.json").read_text())["stacks"]}
    assert review[env.stack_name("security")]["action"] == "failed"
    assert review[env.stack_name("network")]["action"] == "unchanged"  # every other stack is still reviewed


def test_a_stack_whose_only_change_set_failed_has_no_template_and_is_handled(env, world):
    """GetTemplate of such a stack (REVIEW_IN_PROGRESS) carries no TemplateBody at all."""
    first_deploy(env, world)
    cfn = world.cfn(env.region)
    cfn.stack(env.stack_name("monitoring")).deleted = True
    world.change_set_failures[env.stack_name("monitoring")] = "boom"
    code, text = run_deploy(env, world, "deploy", "--yes")
    assert code == 1 and "FAILED payments-staging-monitoring: change set failed: boom" in text
    assert "TemplateBody" not in cfn.get_template(StackName=env.stack_name("monitoring"))
    for stack in cfn.stacks:
        stack.termination_protection = False
    code, text = run_deploy(env, world, "destroy", "--yes")  # reads every stack's template
    assert code == 0, text
    assert "Traceback" not in text and "KeyError" not in text


def test_an_interrupted_plans_empty_review_stack_is_replaced_by_the_next_plan(env, world):
    first_deploy(env, world)
    cfn = world.cfn(env.region)
    cfn.stack(env.stack_name("monitoring")).deleted = True
    template = json.loads((env.build_dir / "staging" / "monitoring.json").read_text())
    cfn.create_change_set(StackName=env.stack_name("monitoring"), ChangeSetName="deploy-interrupted",
                          ChangeSetType="CREATE", TemplateBody=json.dumps(template),
                          Tags=[{"Key": k, "Value": v} for k, v in env.tags.items()])
    assert cfn.stack(env.stack_name("monitoring")).status == "REVIEW_IN_PROGRESS"
    code, text = run_deploy(env, world, "plan")
    assert code == 0, text
    assert any(f"stack/{env.stack_name('monitoring')}/" in c["StackName"] for c in world.calls_of("delete_stack"))
    review = {e["stack"]: e for e in json.loads((env.build_dir / "staging" / "review.json").read_text())["stacks"]}
    assert review[env.stack_name("monitoring")]["action"] == "create"


def test_someone_elses_review_stack_is_left_alone(env, world):
    first_deploy(env, world)
    cfn = world.cfn(env.region)
    cfn.stack(env.stack_name("monitoring")).deleted = True
    cfn.create_change_set(StackName=env.stack_name("monitoring"), ChangeSetName="theirs", ChangeSetType="CREATE",
                          TemplateBody=json.dumps({"Resources": {"T": {"Type": "AWS::SNS::Topic"}}}))
    world.calls.clear()
    code, text = run_deploy(env, world, "plan")
    assert code == 1 and "does not carry our tags" in text
    assert world.calls_of("delete_stack") == []


# --- Ctrl-C -----------------------------------------------------------------------------------------------------


def _interrupt_on_wait(monkeypatch, after: int):
    """Ctrl-C arrives in the main thread while it waits for running stacks (the `after`-th wait)."""
    real_wait = scheduler.wait
    calls = {"n": 0}

    def wait(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == after:
            raise KeyboardInterrupt
        return real_wait(*args, **kwargs)

    monkeypatch.setattr(scheduler, "wait", wait)


def test_ctrl_c_during_deploy_stops_new_stacks_reports_and_exits_130(env, world, monkeypatch):
    ctx = virtual_context(world)
    world.default_latency = 5.0
    real = scheduler.run_graph

    def run_graph(dependencies, work, max_parallel, stop=None, stop_on_failure=True):
        _interrupt_on_wait(monkeypatch, after=3)  # the executor's run (planning runs in planner.py)
        return real(dependencies, work, max_parallel, stop, stop_on_failure)

    monkeypatch.setattr("deploylib.executor.run_graph", run_graph)
    code, text = run_deploy(env, world, "deploy", "--yes", context=ctx)
    assert code == 130, text
    assert "Traceback" not in text and "KeyboardInterrupt" not in text
    summary = text.split("=== Summary ===")[1]
    assert "not started: " in summary
    assert "interrupted: no new stack was started; operations already running go on in CloudFormation" in summary
    deployed = json.loads((env.build_dir / "staging" / "deployed.json").read_text())
    assert deployed["interrupted"] is True and deployed["not_started_stacks"]
    started = {c["ChangeSetName"] for c in world.calls_of("execute_change_set")}
    assert len(started) < 10  # nothing new started after the interrupt


def test_ctrl_c_during_plan_exits_130_and_says_nothing_executed(env, world, monkeypatch):
    ctx = virtual_context(world)
    world.change_set_latency = 30.0
    _interrupt_on_wait(monkeypatch, after=1)
    code, text = run_deploy(env, world, "plan", context=ctx)
    assert code == 130
    assert "plan interrupted: nothing executed" in text and "Traceback" not in text
    assert world.calls_of("execute_change_set") == []


def test_ctrl_c_outside_a_run_exits_130_without_a_traceback(env, world, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("deploylib.commands.run_preflight", interrupted)
    code, text = run_deploy(env, world, "deploy", "--yes")
    assert code == 130
    assert "interrupted: nothing further was started" in text


# --- rollback triggers, change set modes --------------------------------------------------------------------------


def _with_alarms(env):
    env.layers["monitoring"].outputs = {"Api5xxAlarmArn": {"Value": "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:api-5xx"}}
    for layer in ("compute", "api"):
        env.layers[layer].rollback_alarms = [{"stack": env.stack_name("monitoring"), "output": "Api5xxAlarmArn"}]
    env.write()


def test_no_rollback_triggers_sends_an_explicit_empty_list_and_says_so(env, world):
    _with_alarms(env)
    first_deploy(env, world)
    env.layers["api"].resources["Extra"] = {"Type": "AWS::SNS::Topic", "Properties": {}}
    env.write()
    world.calls.clear()
    code, text = run_deploy(env, world, "deploy", "--yes", "--no-rollback-triggers")
    assert code == 0, text
    assert "rollback triggers OFF for this run (--no-rollback-triggers)" in text
    (call,) = world.calls_of("create_change_set", env.stack_name("api"))
    assert call["RollbackConfiguration"] == {"RollbackTriggers": []}


def test_change_sets_are_never_drift_reverting(env, world):
    first_deploy(env, world)
    assert world.calls_of("create_change_set")
    assert all("DeploymentMode" not in call for call in world.calls_of("create_change_set"))


# --- the local environment never reaches AWS -----------------------------------------------------------------------


def test_the_local_environment_refuses_a_non_loopback_endpoint(tmp_path, monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    code = deploy.main(["status", "--env", "local", "--build-dir", str(tmp_path)])
    assert code == 2
    monkeypatch.setenv("AWS_ENDPOINT_URL", "https://cloudformation.eu-west-1.amazonaws.com")
    assert deploy.main(["status", "--env", "local", "--build-dir", str(tmp_path)]) == 2
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
    assert deploy.endpoint_is_local()


# --- a reader that goes away --------------------------------------------------------------------------------------


@pytest.mark.parametrize("reader, first_line", [("head -n 1", "payments-dev-artifacts (eu-west-1): NOT DEPLOYED"),
                                                 ("true", None)])
def test_status_piped_into_a_reader_that_goes_away_ends_quietly(tmp_path, reader, first_line):
    """`true` exits before deploy.py has written anything: its first write meets a closed pipe."""
    if importlib.util.find_spec("flask") is None:
        pytest.skip("moto server needs moto[server] (flask)")
    from moto.server import ThreadedMotoServer

    env = SyntheticEnvironment(tmp_path, "dev")
    standard_layers(env)
    env.write()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        command = (f"{sys.executable} deploy.py status --env dev --build-dir {env.build_dir} | {reader}; "
                   "echo \"exit=${PIPESTATUS[0]}\"")
        result = subprocess.run(["bash", "-c", command], cwd=ROOT, capture_output=True, text=True, timeout=120,
                                env={"PATH": "/usr/bin:/bin", "AWS_ENDPOINT_URL": f"http://{host}:{port}",
                                     "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                                     "AWS_DEFAULT_REGION": "eu-west-1"})
    finally:
        server.stop()
    lines = result.stdout.splitlines()
    assert lines[-1] == "exit=0"
    if first_line:
        assert lines[0] == first_line
    assert "BrokenPipeError" not in result.stderr and "Traceback" not in result.stderr, result.stderr


def test_the_printer_stops_writing_once_the_reader_is_gone():
    from deploylib.output import Printer

    class ClosedPipe:
        writes = 0

        def write(self, text):
            ClosedPipe.writes += 1
            raise BrokenPipeError

        def flush(self):
            pass

    printer = Printer(ClosedPipe())
    printer.line("first")
    printer.line("second")
    assert printer.reader_gone and ClosedPipe.writes == 1


def test_the_review_and_the_prompt_name_the_account_and_the_region(env, world):
    class Terminal:
        def isatty(self):
            return True

    questions = []
    code, text = run_deploy(env, world, "deploy", stdin=Terminal(), ask=lambda q: questions.append(q) or "no")
    assert code == 2
    assert "=== Review: staging (account 123456789012, region eu-west-1) ===" in text
    assert questions == ["Deploy staging (account 123456789012, region eu-west-1)? Type 'yes' to continue: "]
    assert world.calls_of("execute_change_set") == []

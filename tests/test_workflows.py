"""The users' pipeline (.github/workflows/): what every run may touch, checked without GitHub.

actionlint checks the syntax and expressions; these tests check the project's own rules: every
`make` target a workflow calls exists, every action is pinned to a commit, each job holds only
the permissions it uses, credentials come from OIDC only, pull requests never execute anything
and fork pull requests are told why they get no plan."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from templates_src.config import load_environments
from templates_src.delivery import github_role_arn

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
MAKE_CALL = re.compile(r"\bmake ([a-z][a-z-]*)")
# Who may write what: (workflow, job) -> the permissions it may hold beyond contents: read.
ALLOWED_WRITES = {
    ("checks", "build-lint-test"): {"security-events"},
    ("ci", "checks"): {"security-events"},
    ("ci", "plan-staging"): {"id-token", "pull-requests"},
    ("deploy", "checks"): {"security-events"},
    ("deploy", "staging"): {"id-token"},
    ("deploy", "prod"): {"id-token"},
    ("deliver", "deliver"): {"id-token"},
}


def workflows() -> dict[str, dict]:
    return {path.stem: yaml.safe_load(path.read_text()) for path in sorted(WORKFLOWS.glob("*.yml"))}


def triggers(workflow: dict) -> dict:
    """`on:` (YAML 1.1 reads the bare key as True)."""
    return workflow.get("on", workflow.get(True))


def steps(job: dict) -> list[dict]:
    return job.get("steps", [])


def run_lines() -> list[tuple[str, str]]:
    return [(name, step["run"]) for name, workflow in workflows().items()
            for job in workflow["jobs"].values() for step in steps(job) if "run" in step]


def makefile_targets() -> set[str]:
    return set(re.findall(r"^([a-z][a-z-]*):", (ROOT / "Makefile").read_text(), flags=re.MULTILINE))


def test_every_make_target_a_workflow_calls_exists():
    called = {target for _, run in run_lines() for target in MAKE_CALL.findall(run)}
    assert called >= {"build", "lint", "test", "plan", "execute", "delivery-role"}
    assert called - makefile_targets() == set()


def test_every_action_is_pinned_to_a_full_commit():
    for name, workflow in workflows().items():
        for job_name, job in workflow["jobs"].items():
            uses = [job["uses"]] if "uses" in job else [step["uses"] for step in steps(job) if "uses" in step]
            for action in uses:
                if action.startswith("./"):
                    assert (ROOT / action).is_file(), f"{name}/{job_name}: {action} does not exist"
                else:
                    assert PINNED.match(action), f"{name}/{job_name}: {action} is not pinned to a commit SHA"
    for path in WORKFLOWS.glob("*.yml"):  # each pin says which release it is
        for line in path.read_text().splitlines():
            if re.search(r"uses: [\w.-]+/[\w./-]+@[0-9a-f]{40}", line):
                assert re.search(r"# v\d", line), f"{path.name}: {line.strip()} has no version comment"


def test_each_job_holds_only_the_permissions_it_uses():
    seen = set()
    for name, workflow in workflows().items():
        assert workflow["permissions"] == {"contents": "read"}, f"{name}: the default must be contents: read"
        for job_name, job in workflow["jobs"].items():
            assert "permissions" in job, f"{name}/{job_name} must say its permissions"
            granted = {scope for scope, level in (job["permissions"] or {}).items() if level == "write"}
            assert granted <= ALLOWED_WRITES.get((name, job_name), set()), f"{name}/{job_name}: {granted}"
            assert all(level in ("read", "write") for level in (job["permissions"] or {}).values())
            seen.add((name, job_name))
    assert set(ALLOWED_WRITES) <= seen


def test_credentials_come_from_oidc_only():
    text = "\n".join(path.read_text() for path in WORKFLOWS.glob("*.yml"))
    for forbidden in ("aws-access-key-id", "aws-secret-access-key", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert forbidden not in text
    for name, workflow in workflows().items():
        for job_name, job in workflow["jobs"].items():
            assumes = any(step.get("uses", "").startswith("aws-actions/configure-aws-credentials@") for step in steps(job))
            if assumes:
                assert job["permissions"].get("id-token") == "write", f"{name}/{job_name}"


def test_pull_requests_plan_and_never_execute():
    ci = workflows()["ci"]
    assert set(triggers(ci)) == {"pull_request"}
    runs = "\n".join(step.get("run", "") for job in ci["jobs"].values() for step in steps(job))
    assert "make plan ENV=staging" in runs
    for command in ("make execute", "make deploy", "make destroy", "make bootstrap", "make recover"):
        assert command not in runs
    assert "ROLE=github-plan" in runs and "github-deploy" not in runs


def test_fork_pull_requests_skip_the_plan_with_a_message():
    jobs = workflows()["ci"]["jobs"]
    same_repository = "github.event.pull_request.head.repo.full_name == github.repository"
    assert jobs["plan-staging"]["if"] == same_repository
    assert jobs["plan-skipped"]["if"] == same_repository.replace("==", "!=")
    assert jobs["plan-skipped"]["permissions"] == {}
    message = steps(jobs["plan-skipped"])[0]["run"]
    assert "fork" in message and "OIDC" in message and "GITHUB_STEP_SUMMARY" in message


def test_main_deploys_staging_then_prod_through_their_environments():
    deploy = workflows()["deploy"]
    assert triggers(deploy) == {"push": {"branches": ["main"]}}
    jobs = deploy["jobs"]
    assert jobs["staging"]["needs"] == "checks" and jobs["prod"]["needs"] == "staging"
    deliver = workflows()["deliver"]["jobs"]["deliver"]
    assert deliver["environment"] == "${{ inputs.environment }}"
    runs = [step.get("run", "") for step in steps(deliver)]
    plan, execute = (next(i for i, run in enumerate(runs) if run.startswith(f"make {target}")) for target in ("plan", "execute"))
    assert plan < execute  # the job executes the change sets its own plan created


def test_the_workflows_environments_and_roles_are_the_configured_ones():
    configs = load_environments(("dev", "staging", "prod"))
    delivered = [job["with"]["environment"] for job in workflows()["deploy"]["jobs"].values() if "with" in job]
    assert delivered == ["staging", "prod"]
    for environment in delivered:
        config = configs[environment]
        assert config.delivery is not None and config.delivery.github_environment == environment
        github_role_arn(config, "github-deploy")  # raises if the environment has no such role
    github_role_arn(configs["staging"], "github-plan")


def _actionlint() -> str | None:
    for candidate in (ROOT / ".venv" / "bin" / "actionlint", ROOT / ".venv-tools" / "bin" / "actionlint"):
        if candidate.exists():
            return str(candidate)
    return None


def test_actionlint_finds_nothing():
    binary = _actionlint()
    if binary is None:
        pytest.fail("actionlint is not installed in .venv-tools: `make tools` (requirements-tools.txt pins it)",
                    pytrace=False)
    result = subprocess.run([binary, "-no-color", *sorted(str(p) for p in WORKFLOWS.glob("*.yml"))],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_delivery_role_writes_the_workflow_outputs_or_names_what_is_missing(tmp_path, capsys):
    from templates_src.delivery import main

    output = tmp_path / "github_output"
    assert main(["--env", "staging", "--role", "github-plan", "--output", str(output)]) == 0
    assert output.read_text() == ("role=arn:aws:iam::222222222222:role/payments-delivery/payments-staging-github-plan\n"
                                  "region=eu-west-1\n")
    assert main(["--env", "prod", "--role", "github-plan"]) == 2
    assert capsys.readouterr().err == ("error: prod has no github-plan role (it has github-deploy; pull requests plan "
                                       "only where delivery.pull_request_plans is true)\n")
    assert main(["--env", "dev", "--role", "github-deploy"]) == 2
    assert "parameters/dev.yaml has no delivery section" in capsys.readouterr().err

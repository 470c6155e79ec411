"""The deploy smoke test on the real build: the `local` environment through deploy.py against
the emulator, phase by phase as `make e2e` runs it (emulator/e2e.py), plus what the phases
leave in the emulator's services behind the stacks."""
from __future__ import annotations

import json

import pytest

from emulator.e2e import ENVIRONMENT, EndToEnd, PhaseFailed, leftovers


def test_local_build_deploys_redeploys_changes_one_parameter_and_destroys(emu, tmp_path):
    end_to_end = EndToEnd(emu, tmp_path)
    phases = []
    end_to_end.run(lambda name, seconds, detail: phases.append((name, detail)))
    assert [name for name, _ in phases] == [name for name, _ in EndToEnd.PHASES]
    details = dict(phases)
    assert details["redeploy"] == "nothing changed, no change set executed"
    assert details["change one parameter"].startswith("plan: ImageTag 1.0.0 -> 1.0.1 in compute only")
    assert leftovers(emu) == {}


def test_what_the_stacks_create_really_exists_behind_them(emu, tmp_path):
    end_to_end = EndToEnd(emu, tmp_path)
    for phase in ("phase_build", "phase_preflight", "phase_bootstrap", "phase_push", "phase_deploy", "phase_check"):
        getattr(end_to_end, phase)()
    deployed = json.loads((end_to_end.env_dir / "deployed.json").read_text())
    assert deployed["complete"] is True and all(e["template_matches_build"] for e in deployed["stacks"])
    assert emu.client("ecs").list_services(cluster=f"payments-{ENVIRONMENT}-cluster")["serviceArns"]
    assert len(emu.client("lambda").list_functions()["Functions"]) >= 9
    assert emu.client("rds").describe_db_clusters()["DBClusters"][0]["Engine"] == "aurora-postgresql"
    compute = emu.client("cloudformation").describe_stacks(StackName=f"payments-{ENVIRONMENT}-compute")["Stacks"][0]
    parameters = {p["ParameterKey"]: p["ParameterValue"] for p in compute["Parameters"]}
    assert parameters["StackLifecycle"] == "established"  # switched right after the first create


def test_a_missing_image_is_refused_by_preflight_once_its_repository_exists(emu, tmp_path):
    end_to_end = EndToEnd(emu, tmp_path)
    for phase in ("phase_build", "phase_preflight", "phase_bootstrap"):
        getattr(end_to_end, phase)()
    run = end_to_end.deploy_py("deploy", "--yes")
    assert run.code == 2
    words = " ".join(run.output.split())  # the table wraps long details
    assert "FAIL container image payments-local-api:1.0.0 payments-local-api:1.0.0 is not in 123456789012.dkr.ecr" in words
    assert "docker push 123456789012.dkr.ecr.eu-west-1.amazonaws.com/payments-local-api:1.0.0" in run.output


def test_one_deploy_into_an_empty_account_stops_before_compute_until_the_image_is_pushed(emu, tmp_path):
    end_to_end = EndToEnd(emu, tmp_path)
    for phase in ("phase_build", "phase_preflight"):
        getattr(end_to_end, phase)()
    run = end_to_end.deploy_py("deploy", "--yes")  # the repository does not exist yet: preflight says PENDING
    assert run.code == 1
    assert "PENDING" in run.output
    assert "waits for its image: payments-local-api:1.0.0 is not in" in run.output
    cfn = emu.client("cloudformation")
    stacks = {s["StackName"] for s in cfn.describe_stacks()["Stacks"]}
    assert f"payments-{ENVIRONMENT}-artifacts" in stacks and f"payments-{ENVIRONMENT}-compute" not in stacks
    end_to_end.phase_push()
    assert end_to_end.deploy_py("deploy", "--yes").code == 0


def test_a_fresh_account_without_the_ecs_service_linked_role_is_refused_and_the_phase_says_why(emu, tmp_path):
    end_to_end = EndToEnd(emu, tmp_path)
    end_to_end.phase_build()
    with pytest.raises(PhaseFailed) as failure:
        end_to_end.expect(end_to_end.deploy_py("deploy", "--yes"))  # no preflight --fix first
    assert "exit 2 (expected 0)" in str(failure.value)
    assert "AWSServiceRoleForECS" in str(failure.value) and "FIX=1" in str(failure.value)
    assert emu.client("cloudformation").describe_stacks()["Stacks"] == []


def test_the_local_parameters_name_the_emulators_certificate():
    import emulator
    from templates_src.config import load_environment

    config = load_environment(ENVIRONMENT)
    assert config.compute.certificate.arn == emulator.certificate_arn(config.region)
    assert config.account_id == "123456789012"

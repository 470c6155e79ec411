"""Parameter files: every bad input stops the build with the file, the key path and the reason
(exit code 2, no traceback), and nothing is coerced or silently overridden."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import build
from platform_contracts import LAMBDA_DEFAULT_ACCOUNT_CONCURRENCY, LAMBDA_MIN_UNRESERVED
from templates_src.batch_writes import (
    ROWS_PER_S_PER_CHILD,
    WRITE_UNITS_PER_CHILD_PER_S,
    WRITE_UNITS_PER_ROW,
)
from templates_src.compute_functions import reserved_concurrency
from templates_src.config import (
    ENVIRONMENTS,
    PARAMETERS_DIR,
    ConfigError,
    is_placeholder_arn,
    load_environment,
    load_environments,
)
from templates_src.function_catalog import ReservedConcurrency, load_functions

ROOT = Path(__file__).resolve().parent.parent
LOG_RETENTION = "1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653"
REAL_ID = "3f1b2c44-9d1e-4b7a-8c2e-5a6b7c8d9e0f"


@pytest.fixture
def parameters(tmp_path):
    """A writable copy of the real parameter files: edit(env, mutate) changes one through YAML,
    replace(env, old, new) changes its text (for what YAML round trips cannot express)."""
    target = tmp_path / "parameters"
    shutil.copytree(PARAMETERS_DIR, target)

    class Files:
        dir = target

        def edit(self, env, mutate):
            path = target / f"{env}.yaml"
            data = yaml.safe_load(path.read_text())
            mutate(data)
            path.write_text(yaml.safe_dump(data))
            return target

        def replace(self, env, old, new):
            path = target / f"{env}.yaml"
            text = path.read_text()
            assert old in text, old
            path.write_text(text.replace(old, new, 1))
            return target

    return Files()


def run_build(parameters_dir: Path, env: str, capsys, tmp_path) -> tuple[int, str]:
    """build.py as the Makefile runs it, on the given parameter files: (exit code, stderr)."""
    code = build.main(["--env", env, "--no-lint", "--build-dir", str(tmp_path / "out"), "--parameters-dir", str(parameters_dir)])
    return code, capsys.readouterr().err


def refused(parameters_dir, env, capsys, tmp_path) -> str:
    """The error text of a refused build (exit code 2), without its `error: ` prefix."""
    code, err = run_build(parameters_dir, env, capsys, tmp_path)
    assert code == 2, err
    assert "Traceback" not in err
    return err.removeprefix("error: ").rstrip("\n")


def test_real_files_load():
    configs = load_environments()
    assert list(configs) == ["dev", "staging", "prod"]
    assert [c.network.cidr for c in configs.values()] == ["10.0.0.0/16", "10.1.0.0/16", "10.2.0.0/16"]
    assert {c.name: c.network.nat_gateways for c in configs.values()} == {"dev": 0, "staging": 1, "prod": 3}
    assert configs["prod"].dr.enabled and not configs["dev"].dr.enabled
    local = load_environment("local")
    assert (local.account_id, local.region, local.network.cidr) == ("123456789012", "eu-west-1", "10.9.0.0/16")


# --- reading the file -----------------------------------------------------------------------------


def test_a_key_given_twice_is_an_error_naming_both_lines(parameters, capsys, tmp_path):
    directory = parameters.replace("dev", "log_retention_days: 30\n", "log_retention_days: 30\nlog_retention_days: 60\n")
    assert refused(directory, "dev", capsys, tmp_path) == (
        f"{directory}/dev.yaml:9: log_retention_days: given twice (first on line 8); "
        "YAML would silently keep the second value, so say it once"
    )


def test_a_nested_key_given_twice_names_its_path(parameters, capsys, tmp_path):
    directory = parameters.replace("staging", "    max_tasks: 4\n", "    max_tasks: 4\n    max_tasks: 40\n")
    message = refused(directory, "staging", capsys, tmp_path)
    assert message.startswith(f"{directory}/staging.yaml:")
    assert ": compute.ecs.max_tasks: given twice (first on line" in message


def test_yaml_syntax_error_names_the_file_line_and_column(parameters, capsys, tmp_path):
    directory = parameters.replace("dev", "region: eu-west-1", "region: [eu-west-1")
    assert refused(directory, "dev", capsys, tmp_path) == (
        f"{directory}/dev.yaml:4:12: not valid YAML: expected ',' or ']', but got ':'"
    )


def test_file_must_be_mapping(parameters, capsys, tmp_path):
    (parameters.dir / "dev.yaml").write_text("- just\n- a list\n")
    assert refused(parameters.dir, "dev", capsys, tmp_path) == f"{parameters.dir}/dev.yaml: must be a mapping of keys to values"


def test_paths_inside_the_repository_are_shown_relative_to_it():
    with pytest.raises(ConfigError) as caught:
        load_environment("qa")
    assert str(caught.value) == "unknown environment 'qa': choose one of dev, staging, prod, local"
    assert load_environment("dev").name == "dev"


# --- no coercion ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "env, old, new, expected",
    [
        ("dev", "lambda_reserved_concurrency: 5", "lambda_reserved_concurrency: yes",
         "compute.lambda_reserved_concurrency: input should be a valid integer, got bool True (values are never converted)"),
        ("dev", "termination_protection: false", 'termination_protection: "false"',
         "termination_protection: input should be a valid boolean, got str 'false' (values are never converted)"),
        ("dev", "    container_port: 8080", '    container_port: "8080"',
         "compute.ecs.container_port: input should be a valid integer, got str '8080' (values are never converted)"),
        ("dev", 'account_id: "111111111111"', "account_id: 111111111111",
         "account_id: quote it ('111111111111'): YAML reads an unquoted number, which loses leading zeros"),
    ],
)
def test_values_are_never_coerced(parameters, capsys, tmp_path, env, old, new, expected):
    directory = parameters.replace(env, old, new)
    assert refused(directory, env, capsys, tmp_path) == f"{directory}/{env}.yaml: 1 problem(s)\n  {expected}"


# --- keys ---------------------------------------------------------------------------------------------


def test_misspelt_key_gets_did_you_mean_and_is_not_also_missing(parameters, capsys, tmp_path):
    directory = parameters.replace("dev", "  flow_log_retention_days: 30", "  flow_log_retention_dayz: 30")
    assert refused(directory, "dev", capsys, tmp_path) == (
        f"{directory}/dev.yaml: 1 problem(s)\n"
        "  network.flow_log_retention_dayz: unknown key (did you mean 'flow_log_retention_days'?)"
    )


def test_unknown_key_without_a_close_match_lists_the_allowed_keys(parameters, capsys, tmp_path):
    directory = parameters.edit("dev", lambda d: d["dr"].update(colour="blue"))
    assert refused(directory, "dev", capsys, tmp_path) == (
        f"{directory}/dev.yaml: 1 problem(s)\n  dr.colour: unknown key (allowed: enabled, region)"
    )


def test_missing_key(parameters, capsys, tmp_path):
    directory = parameters.edit("staging", lambda d: d["monitoring"].pop("alarm_email"))
    assert refused(directory, "staging", capsys, tmp_path) == (
        f"{directory}/staging.yaml: 1 problem(s)\n  monitoring.alarm_email: missing key"
    )


def test_value_outside_a_fixed_set_lists_the_allowed_ones(parameters, capsys, tmp_path):
    directory = parameters.edit("dev", lambda d: d["data"]["aurora"].update(mode="serverless"))
    assert refused(directory, "dev", capsys, tmp_path) == (
        f"{directory}/dev.yaml: 1 problem(s)\n"
        "  data.aurora.mode: 'serverless' is not allowed: choose one of 'serverless_v2' or 'provisioned'"
    )


@pytest.mark.parametrize("count", [-1, 4])
def test_nat_gateway_count_outside_zero_to_the_zones_is_refused(parameters, capsys, tmp_path, count):
    directory = parameters.edit("dev", lambda d: d["network"].update(nat_gateways=count))
    assert refused(directory, "dev", capsys, tmp_path) == (
        f"{directory}/dev.yaml: 1 problem(s)\n  network.nat_gateways: {count} NAT gateways for 3 zones: allowed 0 to 3"
    )


def test_every_problem_of_a_file_is_reported_at_once(parameters, capsys, tmp_path):
    directory = parameters.edit("dev", lambda d: (d.update(log_retention_days=17, stateful_deletion_policy="Retain")))
    assert refused(directory, "dev", capsys, tmp_path) == (
        f"{directory}/dev.yaml: 2 problem(s)\n"
        f"  log_retention_days: 17 is not a CloudWatch Logs retention period (allowed: {LOG_RETENTION})\n"
        "  stateful_deletion_policy: dev is disposable and deletes its data: allowed Delete (got Retain)"
    )


# --- rules across fields and environments ---------------------------------------------------------------


@pytest.mark.parametrize("env", ["staging", "prod"])
def test_staging_and_prod_must_keep_data_and_be_protected(parameters, capsys, tmp_path, env):
    directory = parameters.edit(env, lambda d: d.update(stateful_deletion_policy="Delete", termination_protection=False))
    assert refused(directory, env, capsys, tmp_path) == (
        f"{directory}/{env}.yaml: 2 problem(s)\n"
        f"  stateful_deletion_policy: {env} keeps its data: allowed Retain, Snapshot (got Delete)\n"
        f"  termination_protection: {env} must be protected: allowed true (got false)"
    )


def test_overlapping_cidrs_name_both_files_and_keys(parameters, capsys, tmp_path):
    directory = parameters.edit("dev", lambda d: d["network"].update(cidr="10.1.0.0/16"))
    assert refused(directory, "dev", capsys, tmp_path) == (
        f"{directory}/dev.yaml network.cidr 10.1.0.0/16 overlaps {directory}/staging.yaml network.cidr 10.1.0.0/16: "
        "environments must not overlap so they can be peered"
    )


def test_overlap_with_an_environment_not_being_built_is_still_found(parameters, capsys, tmp_path):
    directory = parameters.edit("local", lambda d: d["network"].update(cidr="10.2.0.0/16"))
    message = refused(directory, "dev", capsys, tmp_path)
    assert message == (
        f"{directory}/prod.yaml network.cidr 10.2.0.0/16 overlaps {directory}/local.yaml network.cidr 10.2.0.0/16: "
        "environments must not overlap so they can be peered"
    )


def test_zone_outside_region(parameters, capsys, tmp_path):
    directory = parameters.edit("dev", lambda d: d["network"].update(availability_zones=["us-east-1a", "eu-west-1b", "eu-west-1c"]))
    assert refused(directory, "dev", capsys, tmp_path) == (
        f"{directory}/dev.yaml: 1 problem(s)\n  network.availability_zones[0]: 'us-east-1a' is not a zone of eu-west-1"
    )


def test_certificate_needs_exactly_one_source(parameters, capsys, tmp_path):
    directory = parameters.edit("dev", lambda d: d["compute"]["certificate"].update(
        arn=f"arn:aws:acm:eu-west-1:111111111111:certificate/{REAL_ID}"))
    assert refused(directory, "dev", capsys, tmp_path) == (
        f"{directory}/dev.yaml: 1 problem(s)\n"
        "  compute.certificate: give exactly one of arn (an existing certificate) or hosted_zone_id (create one)"
    )


def _existing_certificate(arn):
    def mutate(data):
        data["compute"]["certificate"].pop("hosted_zone_id")
        data["compute"]["certificate"]["arn"] = arn
    return mutate


def test_existing_certificate_must_be_in_the_environments_region_and_account(parameters, capsys, tmp_path):
    directory = parameters.edit("staging", _existing_certificate(f"arn:aws:acm:us-east-1:999999999998:certificate/{REAL_ID}"))
    assert refused(directory, "staging", capsys, tmp_path) == (
        f"{directory}/staging.yaml: 2 problem(s)\n"
        "  compute.certificate.arn: the certificate is in us-east-1; an ALB in eu-west-1 needs one from eu-west-1\n"
        "  compute.certificate.arn: the certificate belongs to account 999999999998, not to account_id 222222222222"
    )


@pytest.mark.parametrize("env", ["staging", "prod"])
def test_placeholder_certificate_is_refused_for_staging_and_prod(parameters, capsys, tmp_path, env):
    account = {"staging": "222222222222", "prod": "333333333333"}[env]
    arn = f"arn:aws:acm:eu-west-1:{account}:certificate/00000000-0000-4000-8000-000000000002"
    directory = parameters.edit(env, _existing_certificate(arn))
    assert refused(directory, env, capsys, tmp_path) == (
        f"{directory}/{env}.yaml: 1 problem(s)\n"
        f"  compute.certificate.arn: {arn} looks like a placeholder; {env} needs a real certificate ARN, "
        "or hosted_zone_id to have the compute stack create one"
    )


def test_dev_may_use_any_certificate_of_its_account():
    assert is_placeholder_arn("arn:aws:acm:eu-west-1:111111111111:certificate/" + REAL_ID)
    assert is_placeholder_arn("arn:aws:acm:eu-west-1:210987654321:certificate/00000000-0000-4000-8000-000000000001")
    assert not is_placeholder_arn("arn:aws:acm:eu-west-1:210987654321:certificate/" + REAL_ID)


def test_image_must_be_a_tag_or_a_digest(parameters, capsys, tmp_path):
    directory = parameters.replace("staging", 'image: "1.0.0"', 'image: "latest:1"')
    assert refused(directory, "staging", capsys, tmp_path) == (
        f"{directory}/staging.yaml: 1 problem(s)\n"
        "  compute.ecs.image: 'latest:1' must be an image tag (letters, digits, . _ -) or a digest "
        "sha256:<64 hex>; the repository is this environment's own (payments-<env>-api)"
    )


@pytest.mark.parametrize("cidr", ["10.0.0.0/33", "10.0.0.1/16", "banana", "10.3.0.0/20", "8.8.0.0/16"])
def test_bad_cidr(parameters, capsys, tmp_path, cidr):
    directory = parameters.edit("dev", lambda d: d["network"].update(cidr=cidr))
    message = refused(directory, "dev", capsys, tmp_path)
    assert message.startswith(f"{directory}/dev.yaml: 1 problem(s)\n  network.cidr: ")


@pytest.mark.parametrize("email", ["not-an-email", "a@b", "x@@example.com", ""])
def test_bad_email(parameters, capsys, tmp_path, email):
    directory = parameters.edit("prod", lambda d: d["monitoring"].update(alarm_email=email))
    assert refused(directory, "prod", capsys, tmp_path) == (
        f"{directory}/prod.yaml: 1 problem(s)\n  monitoring.alarm_email: {email!r} is not an email address"
    )


@pytest.mark.parametrize(
    "mutate, path",
    [
        (lambda d: d["data"]["aurora"].update(backup_retention_days=36), "data.aurora.backup_retention_days"),
        (lambda d: d["compute"].update(lambda_reserved_concurrency=0), "compute.lambda_reserved_concurrency"),
        (lambda d: d["compute"]["ecs"].update(min_tasks=5, max_tasks=2), "compute.ecs"),
        (lambda d: d["network"].update(availability_zones=["eu-west-1a", "eu-west-1b"]), "network.availability_zones"),
        (lambda d: d["network"].update(availability_zones=["eu-west-1a"] * 3), "network.availability_zones"),
    ],
)
def test_values_out_of_range_name_the_key(parameters, capsys, tmp_path, mutate, path):
    message = refused(parameters.edit("dev", mutate), "dev", capsys, tmp_path)
    assert message.splitlines()[1].startswith(f"  {path}: ")


def test_build_cli_reports_config_error_without_traceback(parameters, tmp_path):
    directory = parameters.edit("dev", lambda d: d["network"].update(cidr="10.0.0.0/33"))
    result = subprocess.run(
        [sys.executable, "build.py", "--env", "dev", "--no-lint", "--build-dir", str(tmp_path / "out"),
         "--parameters-dir", str(directory)],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"{directory}/dev.yaml: 1 problem(s)\n  network.cidr: " in result.stderr


@pytest.mark.parametrize(
    "env, mutate, expected",
    [
        ("prod", lambda d: d["storage"].update(audit_lock_mode="GOVERNANCE"),
         "storage.audit_lock_mode: prod's audit trail is locked in COMPLIANCE mode: allowed COMPLIANCE (got GOVERNANCE)"),
        ("staging", lambda d: d["storage"].update(audit_lock_days=30),
         "storage.audit_lock_days: staging keeps 12 months of audit trail: at least 365 (got 30)"),
        ("dev", lambda d: d["storage"].update(audit_lock_mode="COMPLIANCE"),
         "storage: dev is destroyed with its data: audit_lock_mode GOVERNANCE and audit_lock_days 1 (got COMPLIANCE, 1)"),
        ("staging", lambda d: d["compute"].update(http_redirect=True),
         "compute.http_redirect: staging carries card data: allowed false (got true)"),
        ("prod", lambda d: d["storage"].update(audit_lock_days=3000),
         "storage.audit_lock_days: 3000 is longer than audit_retention_days 2555: versions would outlive their retention"),
    ],
)
def test_the_audit_trail_and_port_80_follow_what_the_environment_holds(parameters, capsys, tmp_path, env, mutate, expected):
    directory = parameters.edit(env, mutate)
    assert refused(directory, env, capsys, tmp_path) == f"{directory}/{env}.yaml: 1 problem(s)\n  {expected}"


# --- delivery (GitHub OIDC roles) ----------------------------------------------------------------

PROVIDER_SUFFIX = "oidc-provider/token.actions.githubusercontent.com"


@pytest.mark.parametrize(
    "env, mutate, expected",
    [
        ("staging", lambda d: d["delivery"].update(oidc_provider_arn="arn:aws:iam::222222222222:oidc-provider/gitlab.com"),
         "delivery.oidc_provider_arn: 'arn:aws:iam::222222222222:oidc-provider/gitlab.com' is not the ARN of a GitHub "
         f"OIDC provider: arn:aws:iam::<account>:{PROVIDER_SUFFIX}"),
        ("staging", lambda d: d["delivery"].update(oidc_provider_arn=f"arn:aws:iam::333333333333:{PROVIDER_SUFFIX}"),
         "delivery.oidc_provider_arn: the provider belongs to account 333333333333, not to account_id 222222222222"),
        ("prod", lambda d: d["delivery"].update(pull_request_plans=True),
         "delivery.pull_request_plans: prod carries card data and a pull request's code is not reviewed yet: "
         "allowed false (got true)"),
        ("staging", lambda d: d.update(repository="gitlab.com/example/payments"),
         "repository: delivery trusts GitHub tokens of this repository: give it as github.com/<owner>/<name> "
         "(got gitlab.com/example/payments)"),
        ("staging", lambda d: d["delivery"].pop("github_environment"), "delivery.github_environment: missing key"),
    ],
)
def test_delivery_settings_name_the_key(parameters, capsys, tmp_path, env, mutate, expected):
    directory = parameters.edit(env, mutate)
    assert refused(directory, env, capsys, tmp_path) == f"{directory}/{env}.yaml: 1 problem(s)\n  {expected}"


def test_two_environments_of_one_account_cannot_both_create_the_oidc_provider(parameters, capsys, tmp_path):
    directory = parameters.edit("prod", lambda d: d.update(account_id="222222222222"))
    with pytest.raises(ConfigError) as error:
        load_environments(("staging", "prod"), directory)
    assert str(error.value) == (
        f"{directory}/prod.yaml delivery.oidc_provider_arn: staging and prod share account 222222222222, which holds "
        "one GitHub OIDC provider: give prod the provider staging's bootstrap stack creates "
        f"(arn:aws:iam::222222222222:{PROVIDER_SUFFIX})")
    parameters.edit("prod", lambda d: d["delivery"].update(oidc_provider_arn=f"arn:aws:iam::222222222222:{PROVIDER_SUFFIX}"))
    assert load_environments(("staging", "prod"), directory)["prod"].delivery.oidc_provider_arn


def test_more_batches_at_once_than_the_map_function_reserves_is_refused(parameters, capsys, tmp_path):
    directory = parameters.edit("staging", lambda d: d["batch"].update(max_concurrency=11, reserved_concurrency=10))
    assert refused(directory, "staging", capsys, tmp_path) == (
        f"{directory}/staging.yaml: 1 problem(s)\n  batch.max_concurrency: 11 batches at once cannot run on the batch "
        "map function's 10 reserved executions (batch.reserved_concurrency): at most 10")


def test_reservations_beyond_a_fresh_account_are_refused_naming_the_settings(parameters, capsys, tmp_path):
    directory = parameters.edit("prod", lambda d: d["compute"].update(lambda_reserved_concurrency=100))
    message = refused(directory, "prod", capsys, tmp_path)
    functions = load_functions()
    batch = sum(1 for f in functions if f.reserved_concurrency is ReservedConcurrency.BATCH)
    assert message == (
        f"{directory}/prod.yaml: {len(functions)} functions reserve {100 * (len(functions) - batch) + 30 * batch} "
        f"concurrent executions ({len(functions) - batch} x compute.lambda_reserved_concurrency 100 + {batch} x "
        "batch.reserved_concurrency 30); a fresh account allows 900 (1000 minus the 100 Lambda keeps unreserved)")


@pytest.mark.parametrize("env, batches, expected", [
    ("prod", 37, "37 batches at once write 41,070 units/s (1,110 per child) to a table warm for 40,000 "
                 "(data.warm_write_units_per_s): at most 36 batches, or raise data.warm_write_units_per_s to at least 41,070"),
    ("dev", 4, "4 batches at once write 4,440 units/s (1,110 per child) to a table warm for 4,000 "
               "(data.warm_write_units_per_s, absent: the on-demand default): at most 3 batches, or raise "
               "data.warm_write_units_per_s to at least 4,440"),
])
def test_more_batches_at_once_than_the_tables_warm_writes_is_refused_naming_both_keys(
        parameters, capsys, tmp_path, env, batches, expected):
    directory = parameters.edit(env, lambda d: d["batch"].update(max_concurrency=batches, reserved_concurrency=batches))
    assert refused(directory, env, capsys, tmp_path) == f"{directory}/{env}.yaml: 1 problem(s)\n  batch.max_concurrency: {expected}"


@pytest.mark.parametrize("units", [3_999, 40_001, 400_000])
def test_warm_throughput_below_the_on_demand_default_or_beyond_the_table_quota_is_refused(parameters, capsys, tmp_path, units):
    directory = parameters.edit("staging", lambda d: d["data"].update(warm_write_units_per_s=units))
    assert refused(directory, "staging", capsys, tmp_path) == (
        f"{directory}/staging.yaml: 1 problem(s)\n  data.warm_write_units_per_s: {units:,} is outside 4,000 (what a new "
        "on-demand table serves anyway; leave the key out for that) to 40,000 (an account's default per-table quota); "
        "warm throughput can never be lowered once set")


def test_one_childs_writes_come_from_the_rows_and_the_busiest_table():
    assert WRITE_UNITS_PER_CHILD_PER_S == ROWS_PER_S_PER_CHILD * WRITE_UNITS_PER_ROW["velocity"] == 1_110


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_environment_leaves_a_fresh_account_its_unreserved_floor(env):
    if not (PARAMETERS_DIR / f"{env}.yaml").exists():
        pytest.skip(f"no parameters/{env}.yaml")
    config = load_environment(env)
    total = sum(reserved_concurrency(config, f) for f in load_functions())
    assert total <= LAMBDA_DEFAULT_ACCOUNT_CONCURRENCY - LAMBDA_MIN_UNRESERVED
    assert config.batch.max_concurrency <= config.batch.reserved_concurrency

"""How the build lints: one process pool for the whole build, templates linted as they are
rendered, the lint cache skipping what cfn-lint already passed, and a finding in any environment
still failing the build with the template named. No test here depends on timing."""
from __future__ import annotations

import hashlib
import json
import re
from concurrent.futures import Future, ProcessPoolExecutor
from types import SimpleNamespace

import pytest

import build
from build import BuildError
from templates_src.config import load_environments
from templates_src.layers import Layer

GOOD = {"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}}
BAD = {"Resources": {"Q": {"Type": "AWS::SQS::Queue", "Properties": {"VisibilityTimeout": "x"}}}}


class InlinePool:
    """Stands in for ProcessPoolExecutor: runs each job in this process when it is submitted and
    records every pool made and every template submitted to it."""

    made: list[InlinePool] = []

    def __init__(self, max_workers, initializer=None):
        self.max_workers, self.submitted, self.shut_down = max_workers, [], False
        InlinePool.made.append(self)

    def submit(self, function, job):
        self.submitted.append(job[0])
        future = Future()
        future.set_result(function(job))
        return future

    def shutdown(self, wait=True, cancel_futures=False):
        self.shut_down = True


@pytest.fixture
def pools(monkeypatch):
    InlinePool.made = []
    monkeypatch.setattr(build, "ProcessPoolExecutor", InlinePool)
    return InlinePool.made


def fake_layer(name: str, template: dict) -> Layer:
    """A layer whose build gives a fixed template (to_json is all render_stack asks of it)."""
    rendered = SimpleNamespace(to_json=lambda **options: json.dumps(template, **options), resources={})
    return Layer(name, module=SimpleNamespace(build=lambda config: rendered))


def planted_finding(job):
    """A lint job that finds one problem, in staging's compute template only."""
    path, _, _ = job
    return path, ["E9999 line 1: planted"] if path == "staging/compute.json" else []


def test_lint_cache_skips_unchanged_templates_and_forgets_failures(tmp_path, monkeypatch, pools):
    config = load_environments(("dev",))["dev"]
    monkeypatch.setattr(build, "layers_for", lambda config: [fake_layer("good", GOOD), fake_layer("bad", BAD)])
    with pytest.raises(BuildError) as failure:
        build.build_environment(config, tmp_path)
    assert all(line.startswith("dev/bad.json: ") for line in str(failure.value).splitlines())
    assert "E3012" in str(failure.value), "cfn-lint found nothing in a broken template"
    cache = json.loads((tmp_path / "dev" / ".lint-cache.json").read_text())
    good_body = (tmp_path / "dev" / "good.json").read_bytes()
    assert cache == {"good": f"{build.cfn_lint_version()}:eu-west-1:{hashlib.sha256(good_body).hexdigest()}"}

    with pytest.raises(BuildError):
        build.build_environment(config, tmp_path)
    assert pools[-1].submitted == ["dev/bad.json"], "an unchanged template that passed was linted again"


def test_one_pool_lints_every_environment_and_a_rebuild_starts_none(tmp_path, monkeypatch, pools):
    monkeypatch.setattr(build, "_lint_job", lambda job: (job[0], []))
    assert build.main(["--build-dir", str(tmp_path)]) == 0
    assert len(pools) == 1, "the build made a lint pool per environment"
    linted = {path.split("/")[0] for path in pools[0].submitted}
    assert linted == {"dev", "staging", "prod"} and len(pools[0].submitted) == 34
    assert pools[0].shut_down

    assert build.main(["--build-dir", str(tmp_path)]) == 0
    assert len(pools) == 1, "a no-change rebuild started a lint pool (and imported cfn-lint)"


def test_a_finding_in_one_environment_fails_the_build_and_names_the_template(tmp_path, monkeypatch, capsys, pools):
    monkeypatch.setattr(build, "_lint_job", planted_finding)
    assert build.main(["--build-dir", str(tmp_path)]) == 1
    assert capsys.readouterr().err == "build failed:\nstaging/compute.json: E9999 line 1: planted\n"
    # As when environments were built one by one: dev is complete, staging stops before its
    # manifest, and nothing of prod is written.
    assert (tmp_path / "dev" / "manifest.json").exists()
    assert (tmp_path / "staging" / "compute.json").exists() and not (tmp_path / "staging" / "manifest.json").exists()
    assert not (tmp_path / "prod").exists()
    assert len(pools) == 1


def test_a_real_pool_reports_a_real_finding(tmp_path, monkeypatch):
    """The worker processes (not the in-process stand-in): cfn-lint's rules loaded by the
    initializer, a broken template in staging reported, dev's templates passing."""
    made = []

    class CountingPool(ProcessPoolExecutor):
        def __init__(self, *args, **kwargs):
            made.append(self)
            super().__init__(*args, **kwargs)

    def layers(config):
        return [fake_layer("good", GOOD)] + ([fake_layer("bad", BAD)] if config.name == "staging" else [])

    monkeypatch.setattr(build, "ProcessPoolExecutor", CountingPool)
    monkeypatch.setattr(build, "layers_for", layers)
    configs = list(load_environments(("dev", "staging")).values())
    with build.LintPool() as pool:
        results = build.build_environments(configs, tmp_path, linter=pool)
        assert next(results)[0] == "dev"
        with pytest.raises(BuildError) as failure:
            next(results)
    assert len(made) == 1
    assert {line.split(": ")[0] for line in str(failure.value).splitlines()} == {"staging/bad.json"}
    assert re.search(r"^staging/bad.json: E3012 line \d+: 'x' is not of type 'integer'$", str(failure.value), re.M)


def test_the_lint_cache_key_names_the_installed_cfn_lint():
    import cfnlint.version

    assert build.cfn_lint_version() == cfnlint.version.__version__

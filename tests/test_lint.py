"""cfn-lint (informational rules on) and checkov report nothing on any built template."""
from __future__ import annotations

import json
import os
import subprocess
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import build

ROOT = Path(__file__).resolve().parent.parent
CHECKOV = ROOT / ".venv-tools" / "bin" / "checkov"


def _templates(built):
    for env, data in built.items():
        for stack in data["manifest"]["stacks"]:
            yield env, stack, data["dir"] / stack["template"]


def test_cfn_lint_reports_nothing(built_environments):
    jobs = [(str(path), path.read_text(), stack["region"]) for _, stack, path in _templates(built_environments)]
    with ProcessPoolExecutor(max_workers=2) as pool:
        findings = {path: found for path, found in pool.map(build._lint_job, jobs) if found}
    assert findings == {}


def test_cfn_lint_catches_a_real_problem():
    body = json.dumps({"Resources": {"Q": {"Type": "AWS::SQS::Queue", "Properties": {"VisibilityTimeout": "x"}}}})
    assert build.lint_template(body, "eu-west-1"), "cfn-lint found nothing in a broken template"


def test_checkov_reports_no_failed_check(built_environments):
    assert CHECKOV.exists(), "checkov is missing: `make tools` creates .venv-tools"
    paths = [str(path) for _, _, path in _templates(built_environments)]
    # --skip-download and BC_SKIP_MAPPING keep checkov offline (it would fetch guidelines).
    arguments = [str(CHECKOV), "--skip-download", "--framework", "cloudformation", "--output", "json", "--quiet", "--compact"]
    for path in paths:
        arguments += ["-f", path]
    environment = {**os.environ, "BC_SKIP_MAPPING": "TRUE"}
    result = subprocess.run(arguments, capture_output=True, text=True, timeout=600, env=environment)
    reports = json.loads(result.stdout) if result.stdout.strip() else []
    reports = reports if isinstance(reports, list) else [reports]
    failed = [
        f"{check['file_path']} {check['resource']} {check['check_id']}: {check['check_name']}"
        for report in reports if isinstance(report, dict)
        for check in report.get("results", {}).get("failed_checks", [])
    ]
    assert failed == [], "\n".join(failed)
    passed = sum(r.get("summary", {}).get("passed", 0) for r in reports if isinstance(r, dict))
    assert passed > 100, "checkov checked almost nothing: did it read the templates?"
    assert result.returncode == 0, result.stderr[-2000:]

"""Shared fixtures: every environment built once per test session (without cfn-lint, which
`make build` and tests/test_lint.py cover), and the parsed templates."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from hypothesis import settings

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# No test may reach AWS: fake credentials and a region for every boto3 client made in tests.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_SESSION_TOKEN", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "eu-west-1")
os.environ.pop("AWS_PROFILE", None)

from templates_src.config import ENVIRONMENTS  # noqa: E402  (dev, staging, prod and the emulator's local)

# In CI, property tests draw the same examples every run: a red build then means a change broke
# something, never that a new random example turned up (run locally to explore new examples).
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture(scope="session")
def built_environments(tmp_path_factory):
    """{env: {"dir": Path, "manifest": dict, "templates": {layer: dict}}} for every environment."""
    import build
    from templates_src.config import load_environments

    build_dir = tmp_path_factory.mktemp("build")
    result = {}
    for name, config in load_environments(ENVIRONMENTS).items():
        manifest = build.build_environment(config, build_dir, run_lint=False)
        env_dir = build_dir / name
        templates = {
            stack["layer"]: json.loads((env_dir / stack["template"]).read_text()) for stack in manifest["stacks"]
        }
        result[name] = {"dir": env_dir, "manifest": manifest, "templates": templates, "config": config}
    return result


def all_templates(built):
    for env, data in built.items():
        for layer, template in data["templates"].items():
            yield env, layer, template

"""Golden templates for staging: a template change is a reviewed change to tests/golden/.

After an intended change: `make golden`, then review `git diff tests/golden`.
"""
from __future__ import annotations

import difflib
import os
from pathlib import Path

import pytest

from templates_src.config import load_environment
from templates_src.layers import layers_for

GOLDEN_DIR = Path(__file__).resolve().parent / "golden" / "staging"
# Every stack staging builds: a new layer gets a golden file or fails, never silently skipped.
LAYERS = [layer.name for layer in layers_for(load_environment("staging"))]


def test_every_golden_file_is_a_layer_staging_builds():
    assert sorted(path.stem for path in GOLDEN_DIR.glob("*.json")) == sorted(LAYERS)


@pytest.mark.parametrize("layer", LAYERS)
def test_staging_template_matches_golden(built_environments, layer):
    actual = (built_environments["staging"]["dir"] / f"{layer}.json").read_text()
    golden = GOLDEN_DIR / f"{layer}.json"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(actual)
    assert golden.exists(), f"no golden file for {layer}: run `make golden` and review it"
    expected = golden.read_text()
    if actual != expected:
        diff = difflib.unified_diff(expected.splitlines(), actual.splitlines(), "golden", "built", lineterm="", n=2)
        shown = "\n".join(list(diff)[:60])
        pytest.fail(f"{layer} template changed; review the diff, then `make golden`:\n{shown}", pytrace=False)


README = Path(__file__).resolve().parent.parent / "README.md"
START, END = "<!-- stacks-diagram:start -->\n", "<!-- stacks-diagram:end -->\n"


def test_readme_stack_diagram_is_the_built_one(built_environments):
    import build

    diagram = "```mermaid\n" + build.render_mermaid(built_environments["prod"]["manifest"]) + "```\n"
    text = README.read_text()
    before, rest = text.split(START, 1)
    _, after = rest.split(END, 1)
    if os.environ.get("UPDATE_GOLDEN"):
        README.write_text(before + START + diagram + END + after)
        text = README.read_text()
    if START + diagram + END not in text:
        pytest.fail("README's stack diagram is stale: run `make golden`", pytrace=False)


COVERAGE_START, COVERAGE_END = "<!-- emulator-coverage:start -->\n", "<!-- emulator-coverage:end -->"
DEPLOY_DOC = Path(__file__).resolve().parent.parent / "docs" / "deploy.md"


def test_docs_say_what_the_emulator_creates_and_what_it_only_records():
    from emulator.coverage import render_markdown

    table = render_markdown()
    text = DEPLOY_DOC.read_text()
    before, rest = text.split(COVERAGE_START, 1)
    _, after = rest.split(COVERAGE_END, 1)
    if os.environ.get("UPDATE_GOLDEN"):
        DEPLOY_DOC.write_text(before + COVERAGE_START + table + COVERAGE_END + after)
        text = DEPLOY_DOC.read_text()
    if COVERAGE_START + table + COVERAGE_END not in text:
        pytest.fail("docs/deploy.md's emulator coverage table is stale: run `make golden`", pytrace=False)


PCI_DOC = Path(__file__).resolve().parent.parent / "docs" / "pci-dss.md"


def test_pci_dss_evidence_is_generated_and_current(built_environments):
    from templates_src.pci import render

    document = render({env: data["templates"] for env, data in built_environments.items()})
    if os.environ.get("UPDATE_GOLDEN"):
        PCI_DOC.write_text(document)
    if not PCI_DOC.exists() or PCI_DOC.read_text() != document:
        pytest.fail("docs/pci-dss.md is stale: run `make golden`", pytrace=False)


def test_pci_evidence_refuses_a_claim_with_nothing_behind_it(built_environments):
    from templates_src import pci

    templates = {env: data["templates"] for env, data in built_environments.items()}
    ghost = pci.Requirement("9.9", "a claim", "nothing", (pci.Evidence("storage", (), ("NoSuchBucket",)),),
                            ("tests/test_policies.py::test_no_allow_statement_has_a_wildcard_action",))
    untested = pci.Requirement("9.9", "a claim", "nothing", (pci.Evidence("storage", ("AWS::S3::Bucket",)),),
                               ("tests/test_policies.py::test_that_does_not_exist",))
    for requirement, message in ((ghost, "NoSuchBucket"), (untested, "does not exist")):
        original = pci.REQUIREMENTS
        pci.REQUIREMENTS = (requirement,)
        try:
            with pytest.raises(ValueError, match=message):
                pci.render(templates)
        finally:
            pci.REQUIREMENTS = original

"""Helpers shared by the layer tests."""
from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def contract_cell_keys(cell: str) -> set[str]:
    """The keys one cell of docs/exports.md names: bare identifiers, and `<Q>...` once per row of
    messaging.QUEUES (`<Fn>...` patterns and prose are left to the compute tests)."""
    from templates_src.messaging import QUEUES

    keys = set()
    for piece in cell.split(","):
        piece = piece.strip()
        if re.fullmatch(r"[A-Z][A-Za-z]+", piece):
            keys.add(piece)
        keys |= {f"{queue.stem}{rest}" for rest in re.findall(r"`<Q>([A-Za-z]+)`", piece) for queue in QUEUES}
    return keys


def exports_contract(layer: str) -> set[str]:
    """The keys docs/exports.md promises for `layer`."""
    for line in (ROOT / "docs" / "exports.md").read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 2 and cells[0] == layer:
            return contract_cell_keys(cells[1])
    raise AssertionError(f"docs/exports.md has no row for {layer}")


def imported_exports(node) -> set[str]:
    """Every export name read with Fn::ImportValue anywhere under `node`."""
    found = set()
    if isinstance(node, dict):
        if "Fn::ImportValue" in node:
            found.add(node["Fn::ImportValue"])
        for value in node.values():
            found |= imported_exports(value)
    elif isinstance(node, list):
        for value in node:
            found |= imported_exports(value)
    return found


def of_type(template: dict, resource_type: str) -> dict[str, dict]:
    return {key: r for key, r in template["Resources"].items() if r["Type"] == resource_type}


def logical(name: str) -> str:
    """payment_api -> PaymentApi, as FunctionDeclaration.logical_name does."""
    return "".join(part.capitalize() for part in name.split("_"))


def write_function(functions_dir: Path, name: str, triggers=("stepfunctions",)) -> None:
    """A minimal declared function (app.py + function.yaml) under `functions_dir`."""
    directory = functions_dir / name
    directory.mkdir(parents=True)
    (directory / "app.py").write_text("def handler(event, context):\n    return {}\n")
    declaration = {
        "description": f"test function {name}",
        "memory_mb": 256,
        "timeout_s": 10,
        "returns": "a test result",
        "triggers": [{"type": trigger} for trigger in triggers],
    }
    (directory / "function.yaml").write_text(yaml.safe_dump(declaration))


def rendered(layer_module, env: str) -> tuple:
    """(config, parsed template) of one layer for one environment's real parameter file."""
    from templates_src.config import load_environment

    config = load_environment(env)
    return config, json.loads(layer_module.build(config).to_json())


def keeps_data(env: str) -> bool:
    return env in ("staging", "prod")


def assert_data_policy(resource: dict, env: str, where: str = "", snapshot: bool = False) -> None:
    """dev (and local) delete their data. staging and prod keep it: on stack deletion
    (RetainExceptOnCreate, so the rollback of a failed first create still removes it) and on
    replacement (Retain); the Aurora cluster is snapshotted instead."""
    if not keeps_data(env):
        expected = ("Delete", "Delete")
    elif snapshot:
        expected = ("Snapshot", "Snapshot")
    else:
        expected = ("RetainExceptOnCreate", "Retain")
    assert (resource.get("DeletionPolicy"), resource.get("UpdateReplacePolicy")) == expected, where

"""What CloudFormation needs to manage each resource type the platform deploys, from AWS's own
resource registry: every registry schema lists, per handler (create, read, update, delete), the
IAM actions the handler calls. The CloudFormation service role is granted exactly those actions
for exactly the platform's types (templates_src/delivery.py), never a wildcard.

Each action also carries the ARN formats of the resources it authorizes on, from the IAM
service authorization data cfn-lint bundles (AdditionalSpecs/Policies.json): an action with none
authorizes only on "*". A handler action IAM does not know (the registry still lists a few
retired S3 names such as s3:DeleteBucketEncryption) is left out: no policy could grant it.

Both are kept in `registry_permissions.json` beside this file, written from cfn-lint's data
(`python -m templates_src.registry_permissions`), so the delivery template does not change with a
cfn-lint upgrade; a test says when the file is stale.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from pathlib import Path

DATA_FILE = Path(__file__).with_name("registry_permissions.json")
HANDLERS = ("create", "read", "update", "delete")


def _cfnlint_data() -> Path:
    import cfnlint  # only when regenerating or testing the file: the build reads the JSON

    return Path(cfnlint.__file__).parent / "data"


def _schema_dir() -> Path:
    return _cfnlint_data() / "schemas" / "resources"


def iam_resource_formats(actions: set[str]) -> dict[str, list[str]]:
    """{action: ARN formats of the resources it authorizes on} for the actions IAM knows."""
    services = json.loads((_cfnlint_data() / "AdditionalSpecs" / "Policies.json").read_text())
    formats: dict[str, list[str]] = {}
    for action in sorted(actions):
        prefix, name = action.split(":", 1)
        service = services.get(prefix, {})
        known = service.get("Actions", {}).get(name.lower())
        if known is None:
            continue
        formats[action] = sorted({arn_format for resource in known.get("Resources", [])
                                  for arn_format in service.get("Resources", {}).get(resource, {}).get("ARNFormats", [])})
    return formats


def registry_handler_permissions(resource_types: frozenset[str]) -> dict[str, list[str]]:
    """{resource type: sorted actions of its create/read/update/delete handlers} from the
    registry schemas cfn-lint ships. A type the registry lacks (a custom resource) has none."""
    found: dict[str, list[str]] = {}
    for path in sorted(_schema_dir().glob("*.json")):
        schema = json.loads(path.read_text())
        type_name = schema.get("typeName")
        if type_name not in resource_types or type_name in found:
            continue
        handlers = schema.get("handlers", {})
        actions = {action for handler in HANDLERS for action in handlers.get(handler, {}).get("permissions", [])}
        found[type_name] = sorted(actions)
    return dict(sorted(found.items()))


@cache
def handler_permissions() -> dict[str, list[str]]:
    """The checked-in list: {resource type: actions IAM knows}."""
    return dict(json.loads(DATA_FILE.read_text())["types"])


@cache
def action_resources() -> dict[str, list[str]]:
    """The checked-in list: {action: ARN formats it authorizes on; empty: only "*"}."""
    return dict(json.loads(DATA_FILE.read_text())["resources"])


def render(resource_types: frozenset[str], services: tuple[str, ...],
           beyond_registry: Mapping[str, tuple[str, ...]] | None = None) -> str:
    """`beyond_registry`: actions handlers need that their schemas omit; their ARN formats too."""
    by_type = registry_handler_permissions(resource_types)
    extra = [action for actions in (beyond_registry or {}).values() for action in actions]
    wanted = {action for actions in [*by_type.values(), extra] for action in actions
              if action.split(":", 1)[0] in services}
    formats = iam_resource_formats(wanted)
    types = {resource_type: [action for action in actions if action in formats]
             for resource_type, actions in by_type.items()}
    return json.dumps({"types": types, "resources": formats}, indent=1, sort_keys=True) + "\n"


if __name__ == "__main__":
    from . import delivery

    DATA_FILE.write_text(render(delivery.PLATFORM_RESOURCE_TYPES, delivery.PLATFORM_SERVICES,
                                delivery.HANDLER_ACTIONS_BEYOND_REGISTRY))
    print(f"wrote {DATA_FILE}")

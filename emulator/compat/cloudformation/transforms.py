"""Template transforms (macros) the emulator can process.

moto gap covered: moto ignores the `Transform` section entirely, so a template using any macro
"deploys" unexpanded, and one using an unknown macro does not fail.

Supported: AWS::SecretsManager-2020-07-23 and AWS::SecretsManager-2024-09-16, whose only effect
is to turn an AWS::SecretsManager::RotationSchedule with HostedRotationLambda into a nested
application holding a rotation Lambda (from the Serverless Application Repository). The
emulator cannot run that Lambda, so it keeps the RotationSchedule as is: its provider records
the rotation on the secret (RotationEnabled, rules, the would-be Lambda's name) in moto's
Secrets Manager. The transform needs CAPABILITY_AUTO_EXPAND, and CAPABILITY_IAM because the
expansion creates the rotation Lambda's IAM role, as in AWS.
Any other transform makes the change set FAILED ("No transform named X found."): the emulator
refuses what it cannot expand rather than deploying a template it did not understand.
"""
from __future__ import annotations

import copy
from typing import Any

SECRETS_MANAGER_TRANSFORMS = frozenset({"AWS::SecretsManager-2020-07-23", "AWS::SecretsManager-2024-09-16"})
SUPPORTED_TRANSFORMS = SECRETS_MANAGER_TRANSFORMS


class TransformError(Exception):
    """The change set fails with this reason."""


def declared_transforms(template: dict) -> list[str]:
    transforms = template.get("Transform", [])
    if isinstance(transforms, (str, dict)):
        transforms = [transforms]
    names = []
    for transform in transforms:
        names.append(transform.get("Name", "") if isinstance(transform, dict) else str(transform))
    return names


def _inline_transforms(node: Any, found: list[str]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Fn::Transform":
                found.append(value.get("Name", "?") if isinstance(value, dict) else str(value))
            _inline_transforms(value, found)
    elif isinstance(node, list):
        for item in node:
            _inline_transforms(item, found)


def required_capabilities(template: dict) -> set[str]:
    needed: set[str] = set()
    names = declared_transforms(template)
    if names:
        needed.add("CAPABILITY_AUTO_EXPAND")
    if any(name in SECRETS_MANAGER_TRANSFORMS for name in names):
        needed.add("CAPABILITY_IAM")
    return needed


def process(template: dict) -> tuple[dict, list[str]]:
    """(the processed template, the transforms applied); TransformError if one is unknown."""
    names = declared_transforms(template)
    inline: list[str] = []
    _inline_transforms({k: v for k, v in template.items() if k != "Transform"}, inline)
    for name in names + inline:
        if name not in SUPPORTED_TRANSFORMS:
            raise TransformError(f"No transform named {name} found. (The emulator expands only "
                                 f"{', '.join(sorted(SUPPORTED_TRANSFORMS))}.)")
    processed = copy.deepcopy(template)
    processed.pop("Transform", None)
    if not any(name in SECRETS_MANAGER_TRANSFORMS for name in names):
        for body in processed.get("Resources", {}).values():
            if body.get("Type") == "AWS::SecretsManager::RotationSchedule" and "HostedRotationLambda" in body.get("Properties", {}):
                raise TransformError(
                    "HostedRotationLambda requires the AWS::SecretsManager-2020-07-23 or "
                    "AWS::SecretsManager-2024-09-16 transform in the template")
    return processed, names

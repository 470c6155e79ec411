"""The read-only commands: status (with optional drift detection) and outputs."""
from __future__ import annotations

import json

from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import ResponseParserError

from .aws import Context, error_message
from .cli import Options
from .manifest import Manifest, StackSpec
from .output import Printer
from .stacks import describe_stack


def drift_status(ctx: Context, spec: StackSpec, timeout_minutes: float = 5) -> str:
    """Drift is information, never a reason for `status` to fail: every error becomes
    "unavailable (why)", and an emulator without the drift APIs says so."""
    cfn = ctx.cfn(spec.region)
    try:
        detection_id = cfn.call("detect_stack_drift", StackName=spec.name)["StackDriftDetectionId"]
        deadline = ctx.clock.monotonic() + timeout_minutes * 60
        while True:
            status = cfn.call("describe_stack_drift_detection_status", StackDriftDetectionId=detection_id)
            if status.get("DetectionStatus") != "DETECTION_IN_PROGRESS":
                return str(status.get("StackDriftStatus") or status.get("DetectionStatus") or "UNKNOWN")
            if ctx.clock.monotonic() >= deadline:
                return "DETECTION_IN_PROGRESS (timed out waiting)"
            ctx.pause(ctx.poll_seconds)
    except (ClientError, BotoCoreError, ResponseParserError, KeyError, NotImplementedError) as error:
        gap = cfn.emulator_gap(error)
        if gap:
            return f"unavailable (drift detection {gap})"
        text = error_message(error) if isinstance(error, ClientError) else str(error).splitlines()[0]
        return f"unavailable ({text or type(error).__name__})"


def cmd_status(ctx: Context, manifest: Manifest, printer: Printer, options: Options) -> int:
    for spec in manifest.stacks:
        deployed = describe_stack(ctx, spec.region, spec.name)
        if not deployed:
            printer.line(f"{spec.name} ({spec.region}): NOT DEPLOYED")
            continue
        updated = deployed.get("LastUpdatedTime") or deployed.get("CreationTime")
        line = (f"{spec.name} ({spec.region}): {deployed['StackStatus']}, updated {updated}, "
                f"termination protection {'on' if deployed.get('EnableTerminationProtection') else 'off'}")
        if options.drift:
            line += f", drift {drift_status(ctx, spec)}"
        printer.line(line)
    return 0


def cmd_outputs(ctx: Context, manifest: Manifest, printer: Printer, options: Options) -> int:
    collected = {}
    for spec in manifest.stacks:
        deployed = describe_stack(ctx, spec.region, spec.name)
        outputs = (deployed or {}).get("Outputs", [])
        collected[spec.name] = {o["OutputKey"]: o.get("OutputValue", "") for o in outputs}
        printer.line(f"{spec.name}:" + ("" if deployed else " NOT DEPLOYED"))
        for output in sorted(outputs, key=lambda o: o["OutputKey"]):
            export = f"  (export {output['ExportName']})" if output.get("ExportName") else ""
            printer.line(f"  {output['OutputKey']} = {output.get('OutputValue', '')}{export}")
    (manifest.build_dir / "outputs.json").write_text(json.dumps(collected, indent=2, sort_keys=True) + "\n")
    return 0

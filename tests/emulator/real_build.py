"""Building the real dev environment for the emulator's account, and driving deploy.py at it."""
from __future__ import annotations

import io
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EMULATOR_ACCOUNT = "123456789012"


@dataclass
class RunResult:
    code: int
    output: str
    seconds: float


def write_parameters(target: Path, certificate_arn: str, environment: str = "dev") -> Path:
    """parameters/<env>.yaml with the account ids replaced by the emulator's and the
    certificate the emulator provisioned (the real file is not touched)."""
    target.mkdir(parents=True, exist_ok=True)
    text = (ROOT / "parameters" / f"{environment}.yaml").read_text()
    text = re.sub(r"(arn:aws[a-z-]*:[a-z0-9-]+:[a-z0-9-]*:)\d{12}(:)", rf"\g<1>{EMULATOR_ACCOUNT}\g<2>", text)
    text = re.sub(r"\b\d{12}(\.dkr\.ecr\.)", rf"{EMULATOR_ACCOUNT}\g<1>", text)
    text = re.sub(r"(certificate_arn:\s*)\S+", lambda m: m.group(1) + certificate_arn, text)
    (target / f"{environment}.yaml").write_text(text)
    return target


def build(tmp_path: Path, certificate_arn: str, environment: str = "dev"):
    """(config, build dir) of the real build for the emulator's account."""
    import build as build_module
    from templates_src.config import load_environment

    config = load_environment(environment, write_parameters(tmp_path / "parameters", certificate_arn, environment))
    build_dir = tmp_path / "build"
    build_module.build_environment(config, build_dir, run_lint=False)
    return config, build_dir


def push_image(emu, image: str) -> None:
    """A fake image in the emulator's ECR under the task definition's repository and tag."""
    ecr = emu.client("ecr")
    match = re.match(r"^\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com/([^:@]+):(.+)$", image)
    repository, tag = match.groups()
    try:
        ecr.create_repository(repositoryName=repository)
    except ecr.exceptions.RepositoryAlreadyExistsException:
        pass
    manifest = {
        "schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 2,
                   "digest": "sha256:" + "0" * 64},
        "layers": [],
    }
    ecr.put_image(repositoryName=repository, imageManifest=json.dumps(manifest), imageTag=tag)


def run_deploy(command: str, build_dir: Path, environment: str = "dev", *extra: str) -> RunResult:
    import deploy
    from deploylib.output import Printer

    stream = io.StringIO()
    started = time.perf_counter()
    code = deploy.main([command, "--env", environment, "--build-dir", str(build_dir), "--yes",
                        "--poll-seconds", "0.01", *extra], printer=Printer(stream))
    return RunResult(code, stream.getvalue(), time.perf_counter() - started)


def empty_bucket(s3, bucket: str) -> None:
    """Deletes every object version and delete marker (what an operator does before destroy)."""
    while True:
        listing = s3.list_object_versions(Bucket=bucket)
        items = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                 for v in listing.get("Versions", []) + listing.get("DeleteMarkers", [])]
        if not items:
            return
        s3.delete_objects(Bucket=bucket, Delete={"Objects": items, "Quiet": True})

"""Reproducible function packages.

A function's zip holds its own directory (app.py at the root) plus the shared `paylib/` package.
Entries are sorted, timestamps fixed at 1980-01-01, permissions fixed and compression fixed, so the
same sources always give the same bytes and the same sha256. The S3 key is that hash, which makes
the compute template change exactly when code changes, and deploy upload each version once.
"""
from __future__ import annotations

import hashlib
import io
import zipfile
from functools import cache
from pathlib import Path

from .function_catalog import FUNCTIONS_DIR, SHARED_LIBRARY, FunctionDeclaration

FIXED_TIMESTAMP = (1980, 1, 1, 0, 0, 0)
FILE_MODE = 0o100644 << 16
EXCLUDED_NAMES = {"__pycache__", ".pytest_cache", "function.yaml", "tests", ".DS_Store"}
EXCLUDED_SUFFIXES = {".pyc", ".pyo", ".md"}


def _package_files(root: Path, prefix: str) -> list[tuple[str, Path]]:
    files = []
    for path in root.rglob("*"):
        relative = path.relative_to(root)
        if any(part in EXCLUDED_NAMES for part in relative.parts) or path.suffix in EXCLUDED_SUFFIXES:
            continue
        if path.is_file():
            files.append((f"{prefix}{relative.as_posix()}", path))
    return files


def package_bytes(declaration: FunctionDeclaration, functions_dir: Path = FUNCTIONS_DIR) -> bytes:
    entries = _package_files(functions_dir / declaration.name, "")
    entries += _package_files(functions_dir / SHARED_LIBRARY, f"{SHARED_LIBRARY}/")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for archive_name, path in sorted(entries):
            info = zipfile.ZipInfo(archive_name, date_time=FIXED_TIMESTAMP)
            info.external_attr = FILE_MODE
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # unix, whatever machine builds it
            archive.writestr(info, path.read_bytes(), compresslevel=9)
    return buffer.getvalue()


@cache
def _cached_package(name: str, functions_dir: Path) -> tuple[bytes, str]:
    from .function_catalog import load_functions

    declaration = next(d for d in load_functions(functions_dir) if d.name == name)
    data = package_bytes(declaration, functions_dir)
    return data, hashlib.sha256(data).hexdigest()


def package(declaration: FunctionDeclaration, functions_dir: Path = FUNCTIONS_DIR) -> tuple[bytes, str]:
    """(zip bytes, sha256 hex) of a function, built once per process."""
    return _cached_package(declaration.name, functions_dir)


def artifact_key(declaration: FunctionDeclaration, functions_dir: Path = FUNCTIONS_DIR) -> str:
    """The S3 key of the function's zip in the artifact bucket."""
    _, digest = package(declaration, functions_dir)
    return f"functions/{declaration.name}/{digest}.zip"

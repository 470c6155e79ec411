"""benchmarks/batch_ingestion.py --quick runs end to end (so it cannot rot again, as it did when
merchant authentication landed): one line per size, every row accepted, one payment each."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "batch_ingestion.py"
sys.path.insert(0, str(ROOT))
from benchmarks.batch_ingestion import COLUMNS, QUICK  # noqa: E402


def _quick_run() -> tuple[list[str], list[list[str]]]:
    done = subprocess.run([sys.executable, str(SCRIPT), "--quick"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    header, *rows = done.stdout.splitlines()
    return _split_header(header), [line.split() for line in rows]


def _split_header(header: str) -> list[str]:
    """The header's titles contain spaces; they are right-aligned to the columns' widths."""
    titles, position = [], 0
    for _, width in COLUMNS:
        titles.append(header[position:position + width].strip())
        position += width + 1
    return titles


def test_quick_mode_accepts_every_row_and_prints_one_line_per_size():
    titles, rows = _quick_run()
    assert titles == [title for title, _ in COLUMNS]
    assert [int(row[0]) for row in rows] == QUICK["rows"]
    for row in rows:
        assert len(row) == len(COLUMNS)
        values = dict(zip(titles, row, strict=True))
        assert values["accepted"] == values["rows"]
        assert int(values["naive rows"]) == min(QUICK["naive_rows"], int(values["rows"]))
        assert float(values["ours rows/s"]) > 0 and float(values["naive rows/s"]) > 0
        assert values["speedup"].endswith("x")
        assert int(values["messages"]) >= 1  # approved rows went to settlement

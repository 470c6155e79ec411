"""Thread-safe line printer: stacks deploy in parallel, their lines must not interleave."""
from __future__ import annotations

import sys
import threading
from typing import TextIO


class Printer:
    def __init__(self, stream: TextIO | None = None):
        self._stream = stream
        self._lock = threading.Lock()

    def line(self, text: str = "") -> None:
        with self._lock:
            stream = self._stream or sys.stdout
            stream.write(text + "\n")
            stream.flush()

    def stack(self, stack_name: str, text: str) -> None:
        self.line(f"[{stack_name}] {text}")

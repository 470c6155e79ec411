"""Thread-safe line printer: stacks deploy in parallel, their lines must not interleave.

A reader that goes away (`make status | head`) closes the pipe: the printer stops writing and
the command goes on to its end (a deploy must never stop half-way because nobody reads it), and
stdout is pointed at /dev/null so the interpreter's last flush does not complain either.
"""
from __future__ import annotations

import os
import sys
import threading
from typing import TextIO


class Printer:
    def __init__(self, stream: TextIO | None = None):
        self._stream = stream
        self._lock = threading.Lock()
        self.reader_gone = False

    def line(self, text: str = "") -> None:
        with self._lock:
            if self.reader_gone:
                return
            stream = self._stream or sys.stdout
            try:
                stream.write(text + "\n")
                stream.flush()
            except BrokenPipeError:
                self.reader_gone = True
                _silence(stream)

    def stack(self, stack_name: str, text: str) -> None:
        self.line(f"[{stack_name}] {text}")


def _silence(stream: TextIO) -> None:
    try:
        descriptor = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, descriptor)
    os.close(devnull)

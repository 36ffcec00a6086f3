"""A minimal progress bar on stderr: shown only on a terminal, or when asked for."""

from __future__ import annotations

import sys
import time


class Progress:
    """``with Progress(total, "train", verbose) as bar: bar.update(k)``.

    ``verbose=None`` shows the bar only when stderr is a terminal; False never
    shows it; True always does. Redraws at most ten times a second.
    """

    def __init__(self, total: int, description: str, verbose: bool | None = None, stream=None):
        self.stream = sys.stderr if stream is None else stream
        isatty = getattr(self.stream, "isatty", lambda: False)
        self.enabled = bool(isatty()) if verbose is None else bool(verbose)
        self.total, self.description, self.done = max(int(total), 1), description, 0
        self.start = self.last = time.perf_counter()
        self.postfix = ""

    def __enter__(self):
        self._draw(force=True)
        return self

    def __exit__(self, *exc):
        if self.enabled:
            self._draw(force=True)
            self.stream.write("\n")
            self.stream.flush()
        return False

    def update(self, count: int = 1, postfix: str = "") -> None:
        self.done = min(self.done + count, self.total)
        self.postfix = postfix or self.postfix
        self._draw()

    def finish(self, postfix: str = "") -> None:
        """Mark the work done early (an iterative solver that converged before its cap)."""
        self.total = max(self.done, 1)
        self.postfix = postfix or self.postfix
        self._draw(force=True)

    def _draw(self, force: bool = False) -> None:
        now = time.perf_counter()
        if not self.enabled or (not force and now - self.last < 0.1):
            return
        self.last = now
        fraction = self.done / self.total
        bar = "#" * int(24 * fraction)
        elapsed = now - self.start
        self.stream.write(f"\r{self.description}: [{bar:<24s}] {self.done}/{self.total} "
                          f"{elapsed:6.1f}s {self.postfix}")
        self.stream.flush()

"""Optional profile: ``py-spy record`` on the gridgate serve process and its workers while one
load run drives it; a flame graph SVG. A py-spy that cannot attach (ptrace restrictions) is
reported, never fatal."""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ATTACHED_MARK = "Sampling process"


class Profiler:
    def __init__(self, pid: int, svg: Path, log: Path, *, rate: int, max_seconds: float) -> None:
        self.svg = svg
        self.log = log
        self.error: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        binary = pyspy_binary()
        if binary is None:
            self.error = "py-spy is not installed (bench/run --profile installs it into .venv)"
            return
        argv = [
            binary,
            "record",
            "--pid",
            str(pid),
            "--subprocesses",
            "--rate",
            str(rate),
            "--format",
            "flamegraph",
            "--output",
            str(svg),
            "--duration",
            str(max(1, round(max_seconds))),
        ]
        self._log = log.open("wb")
        self._proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT)

    def wait_attached(self, deadline_s: float = 15.0) -> bool:
        """Poll py-spy's output until it says it samples (or exits, or the deadline passes)."""
        if self._proc is None:
            return False
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            if ATTACHED_MARK in self._output():
                return True
            try:
                self._proc.wait(timeout=0.1)
            except subprocess.TimeoutExpired:
                continue
            self.error = f"py-spy exited ({self._proc.returncode}): {self._output()[-600:]}"
            return False
        self.error = f"py-spy did not start sampling in {deadline_s:.0f} s: {self._output()[-600:]}"
        self.stop()
        return False

    def stop(self) -> Path | None:
        """Ask py-spy to write its flame graph (SIGINT), wait for it; the SVG or None."""
        if self._proc is None:
            return None
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGINT)
            try:
                self._proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._log.close()
        if self.svg.exists() and self.svg.stat().st_size > 0:
            return self.svg
        if self.error is None:
            self.error = f"py-spy wrote no flame graph: {self._output()[-600:]}"
        return None

    def _output(self) -> str:
        with contextlib.suppress(OSError):
            return self.log.read_text(errors="replace")
        return ""


def pyspy_binary() -> str | None:
    beside = Path(sys.executable).with_name("py-spy")
    if beside.exists():
        return str(beside)
    return shutil.which("py-spy")

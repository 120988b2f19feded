"""What the numbers were measured on: the machine, the versions, the gridgate commit."""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any


def _run(argv: list[str], cwd: Path | None = None, *, strip: bool = True) -> str:
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=20, cwd=cwd, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    out = done.stdout + done.stderr
    return out.strip() if strip else out


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return 0.0


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _first_version(text: str) -> str:
    match = re.search(r"\d+\.\d+(\.\d+)?", text)
    return match.group(0) if match else (text.splitlines()[0] if text else "unknown")


def _pyspy_version() -> str:
    binary = Path(sys.executable).with_name("py-spy")
    return _first_version(_run([str(binary), "-V"])) if binary.exists() else "not installed"


def git_state(repo: Path, rev: str | None = None) -> dict[str, Any]:
    """HEAD and the working tree's changes; with ``rev``, that commit (exported, so the
    working tree is not what ran)."""
    commit = _run(["git", "rev-parse", rev or "HEAD"], repo)
    subject = _run(["git", "log", "-1", "--format=%s", commit], repo)
    if rev:
        return {
            "commit": commit,
            "subject": subject,
            "rev": rev,
            "exported": True,
            "dirty": False,
            "src_dirty": False,
            "src_changes": [],
        }
    diff = _run(["git", "diff", "HEAD", "--", "src"], repo, strip=False)
    untracked = _run(
        ["git", "ls-files", "--others", "--exclude-standard", "--", "src"], repo, strip=False
    ).split()
    digest = hashlib.sha256(diff.encode())
    for path in sorted(untracked):
        digest.update(path.encode())
        with contextlib.suppress(OSError):
            digest.update((repo / path).read_bytes())
    status = ["git", "status", "--porcelain"]
    changed_src = [
        line[3:] for line in _run([*status, "--", "src"], repo, strip=False).splitlines()
    ]
    changed_all = _run(status, repo, strip=False).splitlines()
    return {
        "commit": commit,
        "subject": subject,
        "rev": None,
        "exported": False,
        "dirty": bool(changed_all),
        "src_dirty": bool(changed_src),
        "src_changes": changed_src,
        # identifies the uncommitted state of src/ that ran: the diff and the untracked files
        "src_diff_sha256": digest.hexdigest() if diff or untracked else None,
        "src_untracked": sorted(untracked),
        "src_diff_lines": len(diff.splitlines()),
    }


def describe(repo: Path, nginx: str, wrk: str, rev: str | None = None) -> dict[str, Any]:
    return {
        "machine": {
            "nproc": os.cpu_count(),
            "cpu_model": _cpu_model(),
            "memory_gib": _memory_gib(),
            "kernel": platform.release(),
            "loadavg_at_start": list(os.getloadavg()),
        },
        "versions": {
            "python": platform.python_version(),
            "aiohttp": _version("aiohttp"),
            "msgspec": _version("msgspec"),
            "uvloop": _version("uvloop"),
            "gridgate": _version("gridgate"),
            "nginx": _first_version(_run([nginx, "-v"])),
            "wrk": _first_version(_run([wrk, "-v"])),
            "py-spy": _pyspy_version(),
        },
        "git": git_state(repo, rev),
    }

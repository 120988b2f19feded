"""Read back a py-spy flame graph SVG (inferno's ``fg:x`` / ``fg:w`` sample attributes): the
functions and files with the most self time, and the gridgate functions with the most
inclusive time, for the report."""

from __future__ import annotations

import html
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_FRAME = re.compile(
    r'<g><title>(?P<title>[^<]*)</title><rect [^>]*?y="(?P<y>[\d.]+)"[^>]*?'
    r'fg:x="(?P<x>\d+)" fg:w="(?P<w>\d+)"'
)
_SAMPLES = re.compile(r" \([\d,]+ samples?, [\d.]+%\)$")
_LOCATION = re.compile(r"\((?P<file>[^():]+)(:\d+)?\)$")


@dataclass(frozen=True)
class Frame:
    name: str  # "function (path/to/file.py:line)"
    y: float
    x: int
    w: int


def frames(svg: Path) -> list[Frame]:
    text = svg.read_text(errors="replace")
    return [
        Frame(_SAMPLES.sub("", html.unescape(m["title"])), float(m["y"]), int(m["x"]), int(m["w"]))
        for m in _FRAME.finditer(text)
    ]


def _file_of(name: str) -> str:
    match = _LOCATION.search(name)
    if match is None:
        return name
    path = match["file"]
    for marker in ("site-packages/", "/src/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return path


def _function(name: str) -> str:
    """``function (file.py)`` without the line number, so a function's lines add up."""
    match = _LOCATION.search(name)
    if match is None:
        return name
    return f"{name[: match.start()].strip()} ({_file_of(name)})"


def summarize(svg: Path, top: int = 15, process_mark: str = "spawn_main") -> dict[str, Any]:
    """Self and inclusive time within the processes whose frame names ``process_mark`` (the
    worker processes; py-spy's ``--subprocesses`` also samples the parent, whose waiting it
    does not always recognise as idle)."""
    found = frames(svg)
    if not found:
        return {"samples": 0, "top_self": [], "top_files": [], "gridgate_inclusive": []}
    everything = max(f.w for f in found)
    levels: dict[float, list[Frame]] = defaultdict(list)
    for f in found:
        levels[f.y].append(f)
    ys = sorted(levels)
    # a frame's children sit one level away from the root; which way depends on the layout
    root_y = next(f.y for f in found if f.w == everything)
    step = (ys[1] - ys[0]) if len(ys) > 1 else 0.0
    child_dy = -step if root_y == ys[-1] else step
    processes = [f for f in found if f.name.startswith("process ")]
    chosen = [f for f in processes if process_mark in f.name] or processes
    if chosen:
        found = [
            f
            for f in found
            if any(p.x <= f.x < p.x + p.w and (f.y - p.y) * child_dy >= 0 for p in chosen)
        ]
    total = sum(p.w for p in chosen) or everything
    self_by_fn: dict[str, int] = defaultdict(int)
    self_by_file: dict[str, int] = defaultdict(int)
    spans: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for f in found:
        kids = levels.get(f.y + child_dy, [])
        covered = sum(k.w for k in kids if f.x <= k.x < f.x + f.w)
        own = max(0, f.w - covered)
        fn = _function(f.name)
        self_by_fn[fn] += own
        self_by_file[_file_of(f.name)] += own
        if "gridgate/" in f.name:
            spans[fn].append((f.x, f.x + f.w))
    inclusive = {fn: _union(s) for fn, s in spans.items()}

    # the frames every worker sample passes through (the process, its entry point) say nothing
    inclusive = {fn: n for fn, n in inclusive.items() if n < 0.98 * total}

    def ranked(table: dict[str, int]) -> list[dict[str, Any]]:
        rows = sorted(table.items(), key=lambda kv: -kv[1])[:top]
        return [{"frame": k, "samples": v, "share": round(v / total, 4)} for k, v in rows if v]

    return {
        "samples": total,
        "processes": [p.name for p in chosen],
        "top_self": ranked(self_by_fn),
        "top_files": ranked(self_by_file),
        "gridgate_inclusive": ranked(inclusive),
    }


def _union(spans: list[tuple[int, int]]) -> int:
    covered, end = 0, -1
    for start, stop in sorted(spans):
        if start >= end:
            covered += stop - start
            end = stop
        elif stop > end:
            covered += stop - end
            end = stop
    return covered

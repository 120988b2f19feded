"""A serving process moves what start-up built out of the collector's reach and collects its
youngest generation less often (``server.tune_collector``). Checked in a fresh interpreter:
freezing this test process's heap would keep its garbage alive."""

from __future__ import annotations

import json
import subprocess
import sys

from gridgate.server import GC_OLDER_THRESHOLDS, GC_YOUNG_THRESHOLD


def test_a_serving_process_freezes_its_start_up_heap_and_collects_less_often() -> None:
    script = (
        "import gc, json\n"
        "from gridgate.app import build_app\n"  # a serving process's modules
        "from gridgate.server import tune_collector\n"
        "before = gc.get_freeze_count()\n"
        "tune_collector()\n"
        "print(json.dumps([before, gc.get_freeze_count(), gc.get_threshold()]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    before, frozen, threshold = json.loads(done.stdout)
    assert before == 0
    assert frozen > 10_000  # the imported modules' objects, at least
    assert threshold == [GC_YOUNG_THRESHOLD, *GC_OLDER_THRESHOLDS]

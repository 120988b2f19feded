"""What a worker serving the API on SQLite does not load: memory it would hold for nothing
(issue 17: a worker's RSS is bounded). Checked in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_an_api_worker_on_sqlite_loads_neither_jinja_nor_sqlalchemys_asyncio_layer(
    tmp_path: Path,
) -> None:
    script = (
        "import asyncio, json, sys\n"
        "from gridgate.app import build_app\n"
        "from gridgate.settings import Settings\n"
        "from gridgate.storage.sql import SqlStore\n"
        "build_app(Settings())\n"
        "async def main():\n"
        f"    store = SqlStore('sqlite:///{tmp_path / 'g.db'}')\n"
        "    await store.open()\n"
        "    await store.close()\n"
        "asyncio.run(main())\n"
        "print(json.dumps(sorted(m for m in sys.modules\n"
        "    if m.split('.')[0] == 'jinja2' or m.startswith('sqlalchemy.ext.asyncio'))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert json.loads(done.stdout) == []

"""The usage spool: usage records kept on local disk while the database cannot take them.

The usage writer keeps records it could not write in memory, up to a bound; past it, it
**spills** them here, and writes them to the database, oldest first, once it is back. Each process
appends to a file of its own (``usage-<pid>-<random>.jsonl``, one msgspec-JSON record a line,
fsynced after every spill) and holds an exclusive ``flock`` on it for as long as it lives. A file
nobody holds a lock on is an **orphan** — its process died, or stopped while the database was
still down — and any process of the same data directory claims it (the lock, taken without
waiting, decides who), writes its records and deletes it.

Order matters only within one request (a stream's checkpoints, then its final record: the last
written wins), and a request's records all come from one process: its own file is written before
any record it still holds in memory, so they reach the database in the order they were made.
Writing a file twice (a process that died while writing one) changes nothing: records replace
records of the same request id.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import msgspec

from gridgate.storage.ports.usage import SpoolChunk
from gridgate.storage.records import UsageRecord

log = logging.getLogger("gridgate.usage")

_PREFIX, _SUFFIX = "usage-", ".jsonl"


class FileSpool:
    """The ``UsageSpool`` port on files of one directory."""

    def __init__(self, directory: Path | str) -> None:
        self._dir = Path(directory)
        self._own: BinaryIO | None = None  # created at the first spill, locked while we live
        self._own_path: Path | None = None
        self._own_read = 0  # bytes of our own file already written to the database
        self._claimed: dict[str, BinaryIO] = {}  # orphan path → its open, locked file
        self._encoder = msgspec.json.Encoder()
        self._decoder = msgspec.json.Decoder(UsageRecord)

    @property
    def directory(self) -> Path:
        return self._dir

    @property
    def holding(self) -> bool:
        """Whether our own file has records not yet written to the database."""
        return self._own is not None and self._own.tell() > self._own_read

    # -- our own file -------------------------------------------------------------------------
    def spill(self, records: Sequence[UsageRecord]) -> None:
        """Append ``records`` to our own file, durably (fsync) before returning."""
        if not records:
            return
        own = self._own or self._create()
        encode = self._encoder.encode
        own.write(b"".join(encode(r) + b"\n" for r in records))
        own.flush()
        os.fsync(own.fileno())

    def _create(self) -> BinaryIO:
        self._dir.mkdir(parents=True, exist_ok=True)
        path = self._dir / f"{_PREFIX}{os.getpid()}-{secrets.token_hex(4)}{_SUFFIX}"
        own = path.open("a+b")
        fcntl.flock(own.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # a new name: never contended
        self._own, self._own_path = own, path
        return own

    def read_own(self, limit: int) -> SpoolChunk | None:
        """The oldest records of our own file not yet written, at most ``limit``."""
        if self._own is None or self._own_path is None or not self.holding:
            return None
        return self._read(self._own, str(self._own_path), self._own_read, limit)

    # -- orphans ---------------------------------------------------------------------------------
    def claim_orphan(self) -> str | None:
        """A spool file no living process holds, now locked by us; None when there is none."""
        if self._claimed:
            return next(iter(self._claimed))
        try:
            names = sorted(os.listdir(self._dir))
        except FileNotFoundError:
            return None
        for name in names:
            path = self._dir / name
            if not (name.startswith(_PREFIX) and name.endswith(_SUFFIX)) or path == self._own_path:
                continue
            try:
                file = path.open("rb")
            except FileNotFoundError:  # another process finished it meanwhile
                continue
            try:
                fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # its process lives, or another one is writing it
                file.close()
                continue
            if os.fstat(file.fileno()).st_nlink == 0:  # done and deleted while we opened it
                file.close()
                continue
            self._claimed[str(path)] = file
            return str(path)
        return None

    def read_orphan(self, path: str, offset: int, limit: int) -> SpoolChunk:
        return self._read(self._claimed[path], path, offset, limit)

    # -- both --------------------------------------------------------------------------------
    def written(self, chunk: SpoolChunk) -> None:
        """``chunk`` is in the database: move past it, and finish its file when it was the last."""
        if self._own_path is not None and chunk.path == str(self._own_path):
            self._own_read = chunk.end
            if chunk.last and self._own is not None and not self.holding:
                self._own.seek(0)
                self._own.truncate(0)  # "a" mode: later spills append from the start again
                self._own_read = 0
            return
        if chunk.last:
            file = self._claimed.pop(chunk.path)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(chunk.path)
            file.close()  # releases the lock, after the unlink: nobody reads it twice

    def close(self) -> None:
        """Release our files: our own is deleted when it holds nothing, else left for the next
        process to claim."""
        for file in self._claimed.values():
            file.close()
        self._claimed.clear()
        own, path = self._own, self._own_path
        self._own = self._own_path = None
        if own is None or path is None:
            return
        if own.tell() <= self._own_read:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        own.close()

    def _read(self, file: BinaryIO, path: str, offset: int, limit: int) -> SpoolChunk:
        file.seek(offset)
        records: list[UsageRecord] = []
        end = offset
        while len(records) < limit:
            line = file.readline()
            if not line:
                break
            if not line.endswith(b"\n"):  # a spill cut short by a crash: nothing after it
                log.error("usage spool %s ends in a partial line; it is skipped", path)
                end += len(line)
                break
            end += len(line)
            try:
                records.append(self._decoder.decode(line))
            except msgspec.DecodeError:
                log.error("usage spool %s has an unreadable line at byte %d", path, end)
        at_end = not file.readline()
        file.seek(0, os.SEEK_END)  # appends (our own file) go on at the end
        return SpoolChunk(path=path, records=records, end=end, last=at_end)

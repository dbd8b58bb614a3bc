"""A run folder written in one go from another tracker's files (``waddle import ...``).

An importer numbers and encodes events itself: they carry the original wall times, context and
end of the run, not the importer's, so they do not go through a live ``Run`` and its writer
thread. This module promises, for every importer:

- the events are numbered from seq 0 without gaps and written as segment files the way the
  client's writer writes them (docs/format.md, "Segment files"), each fsynced;
- a run is written under a temporary name starting with ``.`` in the project folder (not a
  run to any reader) and renamed into place when complete, so an interrupted import leaves no
  half run; an earlier import of the same run is replaced only by a complete new one;
- re-running an import imports nothing twice: the run folder keeps a record of its source
  (``.<tool>-import.json``), and a source that has not changed since is skipped.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import orjson

from waddle import event as event_format
from waddle import segment

WRITE_CHUNK = 1 << 20


class ImportedRun:
    """``with ImportedRun(project_dir, run_id, "wandb", source) as run: run.add(t, kind, fields)``.

    ``source`` (JSON-able) says what is imported, e.g. the source file's path and size: the
    run is skipped when the run folder's record holds the same (check :attr:`unchanged`
    first). Media go into :attr:`dir`, the temporary folder, which becomes the run folder.
    """

    def __init__(
        self,
        project_dir: Path,
        run_id: str,
        tool: str,
        source: Any,
        segment_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        self.project_dir = Path(project_dir)
        self.run_id = run_id
        self.target = self.project_dir / run_id
        self.dir = self.project_dir / f".import-{run_id}-{os.getpid()}"
        self.status = "imported"  # or "replaced", once renamed into place
        self.events = 0
        self._record_name = f".{tool}-import.json"
        self._record = orjson.dumps({"tool": tool, "source": source})
        self._segment_bytes = segment_bytes
        self._file: Any = None
        self._size = 0
        self._buffer = bytearray()

    @property
    def unchanged(self) -> bool:
        """The run folder holds an import of the same source."""
        try:
            return (self.target / self._record_name).read_bytes() == self._record
        except OSError:
            return False

    def __enter__(self) -> ImportedRun:
        self.project_dir.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir()
        return self

    def add(self, t: float, kind: str, fields: dict[str, Any]) -> None:
        """Append the next event; raise ValueError if it cannot be written (too long a line,
        a value JSON cannot hold) with nothing appended."""
        event = {"v": event_format.FORMAT_VERSION, "seq": self.events, "t": t, "type": kind}
        event.update(fields)
        self._append(event)

    def add_keyed(self, t: float, step: int, data: dict[str, Any]) -> None:
        """``add(t, "log", {"step": step, "keyed": True, "data": data})``: the bulk of an
        import, its event built in one go."""
        event = {
            "v": event_format.FORMAT_VERSION,
            "seq": self.events,
            "t": t,
            "type": "log",
            "step": step,
            "keyed": True,
            "data": data,
        }
        self._append(event)

    def _append(self, event: dict[str, Any]) -> None:
        try:
            line = event_format.encode(event)
        except TypeError as error:
            raise ValueError(f"a {event['type']} event could not be encoded: {error}") from None
        if len(line) > segment.MAX_LINE_BYTES:
            raise ValueError(
                f"a {event['type']} event of {len(line)} bytes is longer than a line may be"
            )
        if self._file is None or self._size >= self._segment_bytes:
            self._open_segment()
        self._buffer += line
        self._size += len(line)
        self.events += 1
        if len(self._buffer) >= WRITE_CHUNK:
            self._file.write(self._buffer)
            self._buffer = bytearray()

    def __exit__(self, kind: Any, error: Any, traceback: Any) -> None:
        try:
            self._close_segment()
            if kind is not None:
                return
            (self.dir / self._record_name).write_bytes(self._record)
            if self.target.exists():
                aside = self.project_dir / f".replaced-{self.run_id}-{os.getpid()}"
                os.replace(self.target, aside)
                os.replace(self.dir, self.target)
                shutil.rmtree(aside, ignore_errors=True)
                self.status = "replaced"
            else:
                os.replace(self.dir, self.target)
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)  # gone already when renamed

    def _open_segment(self) -> None:
        self._close_segment()
        self._file = open(self.dir / segment.segment_name(self.events), "wb")  # noqa: SIM115
        self._size = 0

    def _close_segment(self) -> None:
        if self._file is not None:
            self._file.write(self._buffer)
            self._buffer = bytearray()
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None

"""``waddle import tensorboard LOGDIR``: TensorBoard log folders as waddle runs.

Mapping (README, "Coming from TensorBoard"):

- every folder under LOGDIR (LOGDIR included) holding event files is a run, named by its path
  relative to LOGDIR (LOGDIR's own name for LOGDIR), its files read in name order;
- two kinds of sub-folder that TensorBoard's writers make for a run belong to the run of the
  folder above instead: ``add_scalars``' ``<main tag, / as _>_<key>`` folders (their values
  become the keys ``<main tag>/<key>``, as waddle's ``add_scalars`` writes them), and
  ``add_hparams``' folders (the hyperparameters become the run's config, the metrics its
  summary);
- each value keeps its tag (``<tag>/text_summary`` of text as ``<tag>``), step and wall time,
  in a keyed log event (docs/format.md, "Keyed steps"): scalars, histograms, images, audio,
  text (markdown); other plugins' values are counted and left out.

It promises that re-running it imports nothing twice: a run's id is derived from its first
event file (its name and first record), whichever folder above it is imported, and the files
imported (path in the run's folder and size) are its source for waddle/imported_run.py (kept
in ``.tensorboard-import.json``). A run whose files are unchanged is skipped; one whose files
grew (a live TensorBoard run) is imported again and replaces the earlier import, whole.
Problems (a torn last record, a corrupt one, a value out of bounds) are reported with their
file and byte offset, and the rest is imported.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from waddle import event as event_format
from waddle import media, names, tfevents
from waddle.imported_run import ImportedRun
from waddle.text import Markdown
from waddle.values import check_key

TEXT_SUFFIX = "/text_summary"
# Consecutive TensorBoard events of one step and wall time share a log event of at most this
# many keys (as waddle's writer does for SummaryWriter calls).
MERGE_KEYS = 1000
WRITE_CHUNK = 1 << 20
_STAMP = re.compile(r"tfevents\.(\d{9,11})")

Report = Callable[[str], None]


@dataclass
class Source:
    """One TensorBoard run folder, with the sub-folders that belong to it."""

    folder: Path
    files: list[Path]
    scalars_of: list[tuple[Source, str, str]] = field(default_factory=list)  # (sub, tag, key)
    hparams_of: list[Source] = field(default_factory=list)

    def all_files(self) -> list[Path]:
        subs = [sub for sub, _, _ in self.scalars_of] + self.hparams_of
        return self.files + [path for sub in subs for path in sub.files]


@dataclass
class Outcome:
    """What importing one run did."""

    source: str  # the run's folder, relative to LOGDIR (its name)
    project: str
    run_id: str
    status: str  # "imported", "replaced" or "unchanged"
    events: int = 0
    values: int = 0


def import_logdir(
    logdir: Path,
    log_dir: Path,
    project: str,
    report: Report,
    decoder: tfevents.Decoder | None = None,
    segment_bytes: int = 64 * 1024 * 1024,
) -> list[Outcome]:
    """Import every run of the TensorBoard folder ``logdir`` into ``log_dir/project``."""
    logdir = Path(logdir)
    if not logdir.is_dir():
        raise ValueError(f"no TensorBoard log folder at {logdir}")
    names.check("project", project)
    decoder = decoder or tfevents.Decoder()
    sources = find_runs(logdir, decoder)
    decoder.skipped.clear()  # what the look at sub-folders left out is counted below
    outcomes = []
    for source in sources:
        importer = _RunImport(source, logdir, Path(log_dir) / project, project, decoder, report)
        outcomes.append(importer.run(segment_bytes))
    skipped = sum(decoder.skipped.values())
    if skipped:
        kinds = ", ".join(f"{kind} {count}" for kind, count in sorted(decoder.skipped.items()))
        report(f"left out {skipped} values waddle does not import ({kinds})")
    return outcomes


def find_runs(logdir: Path, decoder: tfevents.Decoder) -> list[Source]:
    """The runs of ``logdir`` (module docstring), parents before their sub-folders' owners."""
    found: dict[Path, Source] = {}
    for folder, subfolders, files in os.walk(logdir):  # links are not followed
        subfolders.sort()
        events = sorted(
            Path(folder) / name for name in files if tfevents.is_event_file(Path(folder) / name)
        )
        if events:
            found[Path(folder)] = Source(Path(folder), events)
    for folder, source in list(found.items()):
        parent = found.get(folder.parent)
        if parent is None or folder == logdir:
            continue
        tags = _first_tags(source, decoder)
        if any(tag.startswith("_hparams_/") for tag in tags):
            parent.hparams_of.append(source)
            del found[folder]
        elif len(tags) == 1:
            (tag,) = tags
            stem = tag.replace("/", "_") + "_"
            if folder.name.startswith(stem) and len(folder.name) > len(stem):
                parent.scalars_of.append((source, tag, f"{tag}/{folder.name[len(stem) :]}"))
                del found[folder]
    return list(found.values())


def _first_tags(source: Source, decoder: tfevents.Decoder, events: int = 8) -> set[str]:
    """The tags of the first few summary events of a folder (to tell what wrote it)."""
    tags: set[str] = set()
    seen = 0
    for path in source.files:
        for _, record in tfevents.records(path, lambda *problem: None):
            decoded = decoder(record)
            if decoded is None:
                continue
            tags.update(tag for tag, _, _ in decoded[2])
            seen += 1
            if seen >= events:
                return tags
    return tags


class _RunImport:
    def __init__(
        self,
        source: Source,
        logdir: Path,
        project_dir: Path,
        project: str,
        decoder: tfevents.Decoder,
        report: Report,
    ) -> None:
        self.source = source
        self.project_dir = project_dir
        self.project = project
        self.decoder = decoder
        self.report = report
        relative = source.folder.relative_to(logdir).as_posix()
        self.name = logdir.resolve().name if relative == "." else relative
        self.run_id = _run_id(source.files[0])
        # Relative to the run's folder: the same whichever LOGDIR above it is imported.
        self.files = {
            path.relative_to(source.folder).as_posix(): path.stat().st_size
            for path in source.all_files()
        }

    def run(self, segment_bytes: int) -> Outcome:
        outcome = Outcome(self.name, self.project, self.run_id, "unchanged")
        imported = ImportedRun(
            self.project_dir, self.run_id, "tensorboard", self.files, segment_bytes
        )
        if imported.unchanged:
            return outcome
        with imported:
            outcome.values = self._write(imported)
        outcome.status, outcome.events = imported.status, imported.events
        return outcome

    def _write(self, out: ImportedRun) -> int:
        """Write the run's events into ``out``; returns how many values they hold."""
        problems: list[str] = []
        torn: list[str] = []

        def on_problem(path: Path, offset: int, reason: str) -> None:
            line = f"{path}: byte {offset}: {reason}"
            (torn if reason.startswith("torn") else problems).append(line)
            self.report(line)

        values = 0
        # The log event being merged: its step, wall time and data (None before the first).
        step_of = t_of = data_of = None
        config: dict[str, Any] = {}
        summary: dict[str, Any] = {}
        add_keyed = out.add_keyed
        for batch in self._values(out.dir, on_problem, config, summary):
            for step, t, data in batch:
                values += len(data)
                if t == t_of and step == step_of and len(data_of) < MERGE_KEYS:
                    data_of.update(data)
                    continue
                if data_of is not None:
                    add_keyed(t_of, step_of, data_of)
                else:
                    out.add(t, "run_start", self._start_fields())
                step_of, t_of, data_of = step, t, data
        if data_of is None:  # no value at all: the run still exists, empty
            last_t = _file_time(self.source.files[0])
            out.add(last_t, "run_start", self._start_fields())
        else:
            last_t = t_of
            add_keyed(t_of, step_of, data_of)
        if config:
            out.add(last_t, "config", {"data": config})
        if summary:
            out.add(last_t, "summary", {"data": summary})
        finish: dict[str, Any] = {
            "exit_code": 0 if not torn else 1,
            "status": "finished" if not torn else "crashed",
            "last_step": None,
            "dropped": {"steps": 0, "values": 0},
            "stalled_seconds": 0.0,
            "lost_events": 0,
            "lost_values": len(problems),
        }
        if torn:
            finish["reason"] = "torn record: " + torn[0]
        out.add(last_t, "finish", finish)
        return values

    def _start_fields(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "run_id": self.run_id,
            "name": self.name,
            "config": {},
            "tags": [],
            "notes": None,
            "group": None,
            "job_type": None,
            "resumed": False,
            "context": {},
        }

    def _values(
        self, run_dir: Path, on_problem: Any, config: dict, summary: dict
    ) -> Iterator[list[tuple[int, float, dict[str, Any]]]]:
        """(step, wall time, {key: value}) of every TensorBoard event of the run, in order, in
        lists (tfevents.record_batches)."""
        own = [(self.source.files, None)]
        subs = [(sub.files, key) for sub, _, key in self.source.scalars_of]
        for files, rename in own + subs:
            for path in files:
                yield from self._file(path, run_dir, on_problem, config, rename)
        for sub in self.source.hparams_of:
            for path in sub.files:
                for batch in self._file(path, run_dir, on_problem, config, None):
                    for _, _, data in batch:
                        summary.update(data)

    def _file(
        self, path: Path, run_dir: Path, on_problem: Any, config: dict, rename: str | None
    ) -> Iterator[list[tuple[int, float, dict[str, Any]]]]:
        decoder, scalar, in_bounds = self.decoder, tfevents.scalar, event_format.in_bounds
        keys: dict[str, str | None] = {}  # tag -> its key, None if it cannot be one
        for records in tfevents.record_batches(path, on_problem):
            out = []
            for offset, record in records:
                found = scalar(record)  # the decoder's own first try, called directly
                if found is not None:
                    step, t, tag, value = found
                    key = keys.get(tag)
                    if key is not None and in_bounds(0, t, step):  # the bulk, as below
                        out.append((step, t, {key: value}))
                        continue
                    decoded = step, t, [(tag, "scalar", value)]
                else:
                    try:
                        decoded = decoder(record)
                    except Exception as error:  # a record that frames but does not decode
                        on_problem(path, offset, f"not an event ({error}); skipped")
                        continue
                    if decoded is None:
                        continue
                step, t, values = decoded
                if not in_bounds(0, t, step):
                    on_problem(path, offset, f"step {step} or wall time {t} out of bounds; skipped")
                    continue
                data: dict[str, Any] = {}
                for tag, kind, payload in values:
                    if kind == "hparams":
                        config.update(payload)
                        continue
                    key = keys.get(tag, "")
                    if key == "":
                        key = keys[tag] = self._key(tag, rename, path, offset, on_problem)
                    if key is None:
                        continue
                    if kind == "scalar":
                        data[key] = payload
                        continue
                    try:
                        data[key] = _value(kind, payload, run_dir)
                    except (TypeError, ValueError) as error:
                        on_problem(path, offset, f"value {tag!r} left out: {error}")
                if data:
                    out.append((step, t, data))
            yield out

    @staticmethod
    def _key(tag: str, rename: str | None, path: Path, offset: int, on_problem: Any) -> str | None:
        """The key of ``tag``'s values; None (reported once) when it cannot be a key."""
        key = rename or (tag[: -len(TEXT_SUFFIX)] if tag.endswith(TEXT_SUFFIX) else tag)
        try:
            return check_key(key)
        except (TypeError, ValueError) as error:
            on_problem(path, offset, f"values of tag {tag!r} left out: {error}")
            return None


def _value(kind: str, payload: Any, run_dir: Path) -> Any:
    """A decoded TensorBoard value as waddle's value (media stored in ``run_dir``)."""
    if kind == "scalar" or kind == "histogram":
        return payload
    if kind == "text":  # as waddle's add_text logs it, held to the same limits
        return Markdown(payload)._waddle_snapshot("").materialize(run_dir)
    if kind == "image":
        data, width, height = payload
        extension, mime = _image_type(data)
        stored = media.store_bytes(run_dir, data, extension)
        return {
            "_type": "image",
            **stored,
            "mime": mime,
            "width": width,
            "height": height,
            "caption": None,
        }
    if kind == "audio":
        data, rate, channels, frames, content_type = payload
        mime = content_type or "audio/wav"
        stored = media.store_bytes(run_dir, data, ".wav" if "wav" in mime else ".audio")
        return {
            "_type": "audio",
            **stored,
            "mime": mime,
            "sample_rate": int(rate) or None,
            "channels": channels or None,
            "duration": frames / rate if rate and frames else None,
            "caption": None,
        }
    raise ValueError(f"unknown kind {kind}")


def _image_type(data: bytes) -> tuple[str, str]:
    if data.startswith(b"\x89PNG"):
        return ".png", "image/png"
    if data.startswith(b"\xff\xd8"):
        return ".jpeg", "image/jpeg"
    if data.startswith(b"GIF8"):
        return ".gif", "image/gif"
    raise ValueError("an image that is not PNG, JPEG or GIF")


def _run_id(first_file: Path) -> str:
    """A run id that sorts by the first event file's time (in its name: TensorBoard names
    each file by time, host, process and a counter) and is derived from that file alone (its
    name and first record), so that every import of it, from any folder above, finds the same."""
    found = _STAMP.search(first_file.name)
    seconds = int(found.group(1)) if found else 0
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(seconds))
    with open(first_file, "rb") as file:
        head = file.read(1024)
    if len(head) >= 8:  # its first record only: the file grows, that record stays
        head = head[: 16 + int.from_bytes(head[:8], "little")]
    digest = hashlib.sha256(first_file.name.encode() + b"\0" + head).hexdigest()
    return f"{stamp}-000-tb{digest[:8]}"


def _file_time(path: Path) -> float:
    found = _STAMP.search(path.name)
    return float(found.group(1)) if found else path.stat().st_mtime


def say(line: str) -> None:
    print(f"waddle import: {line}", file=sys.stderr)

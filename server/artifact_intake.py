"""The central side of relaying artifacts: other machines' artifact stores, kept in this
server's project stores (docs/format.md, "Relayed artifacts"; docs/api.md, "Relaying").

An origin's artifact ``name`` of project ``P`` is kept apart from every other machine's, as its
runs are: in ``P/.artifacts/collections/<origin>.<name>/`` (waddle/names.py ``relayed_folder``),
marked with ``origin.json``, holding the origin's manifests byte for byte and its version log's
lines, so its versions, aliases and lineage read here as they read there. Content files are
merged by content: ``P/.artifacts/objects/<sha256>`` serves every origin and this machine. It
promises:

- an object is kept only if its content has the sha256 that names it (server/intake.py
  ``received``), written as the client writes one (temporary name, fsync, rename);
- **a version is never visible before its files**: a manifest is placed (temporary name,
  fsync, hard link: waddle/artifact_store.py) only when its digest is that of its entries and
  every object they name is held here; a manifest never changes once placed;
- **each version log line is appended once, in order**: a request says how many of the
  origin's lines come before its own (``after``); lines already held are skipped, and a
  request that would leave a gap appends none (manifests go first in a request, so a line
  comes with or after its version). The answer says what is held (the versions, the number
  of lines), once durable;
- after a kill, a torn last line of a version log (never acknowledged) is cut off first;
- a request that is not whole and consistent is refused (``invalid_batch``) and writes nothing.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from waddle.server.errors import ApiError
from waddle.server.intake import cut_torn_line, received

from waddle import artifact_store, names
from waddle import event as event_format
from waddle.writer import fsync_dir

_NUMBER = re.compile(r"0|[1-9][0-9]{0,17}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
# Objects asked about in one question.
MAX_OBJECTS = 10_000


def _refuse(message: str) -> ApiError:
    return ApiError("invalid_batch", message)


class ArtifactIntake:
    """The relayed artifacts of one log folder."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._lock = threading.Lock()  # one collection update at a time
        self._lines: dict[Path, int] = {}  # version log lines held, per collection folder
        self.totals = {"versions": 0, "lines": 0, "objects": 0}

    def collection_dir(self, origin: str, project: str, name: str) -> Path:
        folder = names.relayed_folder(origin, artifact_store.check_name(name))
        return artifact_store.collections_dir(self.root / project) / folder

    # --- objects ---

    def lacking(self, project: str, objects: list[str]) -> list[str]:
        """Those of ``objects`` (sha256 digests) the project's store does not hold."""
        bad = [
            digest for digest in objects if type(digest) is not str or not _SHA256.fullmatch(digest)
        ]
        if bad:
            raise ApiError("invalid_parameter", f"not a sha256 digest: {bad[0]!r}")
        project_dir = self.root / project
        return [d for d in objects if not artifact_store.object_path(project_dir, d).is_file()]

    async def store_object(self, project: str, digest: str, body: AsyncIterator[bytes]) -> bool:
        """Keep an uploaded object if its content has the sha256 ``digest``; False when the
        store held it already."""
        if not _SHA256.fullmatch(digest):
            raise ApiError("invalid_parameter", f"not a sha256 digest: {digest!r}")
        target = artifact_store.object_path(self.root / project, digest)
        async with received(self.root, digest, f"object {digest}", body) as temp:
            if target.is_file():
                return False
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(temp, target)
            fsync_dir(target.parent)
        self.totals["objects"] += 1
        return True

    # --- versions ---

    def update(
        self,
        origin: str,
        project: str,
        name: str,
        manifests: dict[str, Any],
        after: Any,
        lines: list[Any],
    ) -> dict[str, Any]:
        """Place the manifests, then append the version log lines that continue what is held;
        what is held now: ``{"id", "versions", "lines"}``."""
        folder = self.collection_dir(origin, project, name)
        with self._lock:
            if artifact_store.read_origin(folder) != (origin, name) and (
                artifact_store.manifest_numbers(folder) or (folder / artifact_store.LOG).exists()
            ):
                raise _refuse(
                    f"the artifact {folder.name} of {project} exists here and is not {origin}'s "
                    "(logged on this machine?): not relayed"
                )
            placing = self._check_manifests(folder, project, name, manifests)
            if type(after) is not int or after < 0 or type(lines) is not list:
                raise _refuse(f"after must be a count of lines and lines a list, not {after!r}")
            held_lines = self._held_lines(folder) if folder.is_dir() else 0
            # Lines before held_lines are replays; lines after a gap are not appended.
            new = lines[held_lines - after :] if after <= held_lines else []
            appended = self._check_lines(new, held_lines)
            if placing or appended:
                folder.mkdir(parents=True, exist_ok=True)
                if artifact_store.read_origin(folder) is None:
                    artifact_store.write_origin(folder, origin, project, name)
                with artifact_store.locked(folder):
                    for number in sorted(placing):
                        made = artifact_store.place_manifest(folder, number, placing[number])
                        self.totals["versions"] += made
                    if appended:
                        artifact_store.append_log(folder, b"".join(appended))
                        self._lines[folder] = held_lines + len(appended)
                        self.totals["lines"] += len(appended)
            return {
                "id": folder.name,
                "versions": artifact_store.manifest_numbers(folder),
                "lines": self._lines.get(folder, held_lines),
            }

    def _check_manifests(
        self, folder: Path, project: str, name: str, manifests: Any
    ) -> dict[int, bytes]:
        """The manifests to place, by version: each a manifest whose digest is its entries',
        every object it names held here, and not another than one held for its version."""
        if type(manifests) is not dict:
            raise _refuse("manifests must be an object of version numbers to manifests")
        placing = {}
        for number, text in manifests.items():
            where = f"{name}:v{number}"
            if not _NUMBER.fullmatch(number) or type(text) is not str:
                raise _refuse(f"{where}: a manifest is a version number and a JSON text")
            data = text.encode()
            try:
                manifest = event_format.decode_document(data)
            except event_format.MalformedEvent as error:
                raise _refuse(f"{where}: the manifest is not JSON ({error})") from None
            entries = manifest.get("entries") if type(manifest) is dict else None
            if type(entries) is not dict or not all(_entry_ok(p, e) for p, e in entries.items()):
                raise _refuse(
                    f"{where}: the manifest's entries are not files and references under "
                    "relative paths"
                )
            if artifact_store.digest(entries) != manifest.get("digest"):
                raise _refuse(f"{where}: the manifest's digest is not that of its entries")
            lacking = self.lacking(
                project, [e["sha256"] for e in entries.values() if "sha256" in e]
            )
            if lacking:
                raise _refuse(
                    f"{where}: {len(lacking)} of its files are not held here (first "
                    f"{lacking[0]}): upload them first"
                )
            try:
                held = (folder / f"v{int(number)}.json").read_bytes()
            except FileNotFoundError:
                placing[int(number)] = data
                continue
            if held != data:
                raise _refuse(f"{where}: another manifest is held for it; manifests never change")
        return placing

    def _check_lines(self, lines: Any, held: int) -> list[bytes]:
        """The lines to append, each a version log line. A line may name a version not held
        yet: readers pass over it until the version's manifest is placed, as on the origin."""
        out = []
        for number, line in enumerate(lines, held + 1):
            where = f"version log line {number}"
            if type(line) is not str or "\n" in line or "\r" in line:
                raise _refuse(f"{where}: not one line of text")
            data = line.encode()
            problem = artifact_store.log_line_problem(data)
            if problem is not None:
                raise _refuse(f"{where}: {problem}")
            out.append(data + b"\n")
        return out

    def _held_lines(self, folder: Path) -> int:
        held = self._lines.get(folder)
        if held is None:
            path = folder / artifact_store.LOG
            try:
                cut_torn_line(path)
                held = path.read_bytes().count(b"\n")
            except FileNotFoundError:
                held = 0
            self._lines[folder] = held
        return held


def _entry_ok(path: str, entry: Any) -> bool:
    """A manifest's entry as the store writes one: a file or a reference, under a path that
    stays inside the artifact (waddle/artifact_store.py ``check_path``)."""
    try:
        if artifact_store.check_path(path) != path:
            return False
    except ValueError:
        return False
    if type(entry) is not dict:
        return False
    if "sha256" in entry:
        return (
            type(entry["sha256"]) is str
            and _SHA256.fullmatch(entry["sha256"]) is not None
            and type(entry.get("size")) is int
        )
    return type(entry.get("ref")) is str

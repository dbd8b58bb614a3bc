"""The relay's side of artifacts: a project's artifact store, forwarded to the central server
(docs/api.md, "Relaying"; the central side is server/artifact_intake.py).

For each artifact (a collection of the store, waddle/artifact_store.py) the relay asks the
central server what it holds of it (which versions, how many version log lines), then sends
the rest: the content files of the versions it lacks, by sha256 and only those the central
server lacks (each checked there against its hash), then those versions' manifests byte for
byte, then the version log lines it has not got. It promises:

- a version's files reach the central server before its manifest, and its manifest before
  or with the lines that name it: a version is never visible there before its files;
- an artifact a run's events name is sent before those events (server/relay.py calls
  :meth:`ArtifactRelay.send` first), so a run's lineage never names a version the central
  server does not show; the artifacts of the projects in the relay's scope are looked at
  every SWEEP seconds too (a version whose run died before its event);
- nothing is kept on disk: after a restart the relay asks again (one question an artifact),
  and sends again only what the central server lacks;
- a version log line the origin's readers skip (malformed, torn) is not sent; an artifact
  relayed into this folder from elsewhere (it holds ``origin.json``) is left to its origin;
- an artifact the central server refuses for good (a version whose file this machine lost or
  that changed, a name taken there) is set aside with the reason, and the others go on;
  failures that pass by themselves (unreachable, 5xx) raise :class:`UplinkError`, for the
  relay to retry.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from waddle.server.uplink import Uplink, UplinkError

from waddle import artifact_store, names
from waddle import event as event_format

# Seconds between looks at every artifact of the projects in scope.
SWEEP = 2.0
# What one request carries, about: manifest bytes, version log lines, objects asked about.
MANIFEST_BYTES = 8 << 20
MAX_LINES = 10_000
MAX_OBJECTS = 1000


@dataclass
class _Held:
    """What the central server holds of one artifact, and the local state last sent whole."""

    versions: set[int]
    lines: int
    sent: tuple | None = None  # the local signature when everything was sent


class ArtifactRelay:
    def __init__(self, root: Path, projects: Any, uplink: Uplink, origin: str) -> None:
        """``projects()``: the projects in the relay's scope."""
        self.root, self.projects, self.uplink, self.origin = root, projects, uplink, origin
        self.held: dict[tuple[str, str], _Held] = {}
        self.named: set[tuple[str, str]] = set()  # named by events sent
        self.refused: dict[tuple[str, str], str] = {}
        self.totals = {"versions": 0, "objects": 0, "object_bytes": 0}
        self._swept_at = 0.0

    def sweep_due(self) -> bool:
        """Whether it is time to look at every artifact in scope (then not again for SWEEP
        seconds)."""
        if time.monotonic() - self._swept_at < SWEEP:
            return False
        self._swept_at = time.monotonic()
        return True

    def send(self, named: set[tuple[str, str]], sweep: bool = False) -> None:
        """Send what the central server lacks of the artifacts ``named`` (by a batch's
        events), and with ``sweep`` of every artifact in scope."""
        self.named |= named
        keys = set(named)
        if sweep:
            keys |= self._in_scope()
        for key in sorted(keys):
            if key not in self.refused and not self._foreign(*key):
                self._send_one(*key)

    def _foreign(self, project: str, name: str) -> bool:
        """An artifact relayed here from another machine (its origin relays it)."""
        if not (names.is_valid(project) and names.is_valid(name)):
            return True
        folder = artifact_store.collection_dir(self.root / project, name)
        return artifact_store.read_origin(folder) is not None

    def _in_scope(self) -> set[tuple[str, str]]:
        keys = set(self.named)
        for project in self.projects():
            for name in artifact_store.collection_names(self.root / project):
                keys.add((project, name))
        return keys

    def _send_one(self, project: str, name: str) -> None:
        folder = artifact_store.collection_dir(self.root / project, name)
        signature = self._signature(project, name)
        held = self.held.get((project, name))
        if signature is None or (held is not None and held.sent == signature):
            return
        if held is None:
            held = self._ask(project, name)
            if held is None:
                return
            self.held[(project, name)] = held
        lines = _log_lines(folder)
        waiting = [n for n in artifact_store.manifest_numbers(folder) if n not in held.versions]
        while True:
            manifests: dict[str, str] = {}
            size = 0
            for number in waiting[:]:
                if manifests and size >= MANIFEST_BYTES:
                    break
                try:
                    data = (folder / f"v{number}.json").read_bytes()
                except OSError as error:
                    data, problem = b"", f"v{number}: its manifest cannot be read: {error}"
                else:
                    problem = self._send_files(project, name, number, data)
                if problem is not None:
                    self._refuse(project, name, problem)
                    waiting = []
                    break
                manifests[str(number)] = data.decode()
                size += len(data)
                waiting.remove(number)
            sending = lines[held.lines : held.lines + MAX_LINES]
            if not manifests and not sending:
                break
            answer = self._post(project, name, manifests, held.lines, sending)
            if answer is None:
                return
            before = (held.versions, held.lines)
            held.versions = {int(n) for n in answer["versions"]}
            held.lines = int(answer.get("lines", 0))
            self.totals["versions"] += len(manifests)
            if (held.versions, held.lines) == before:
                break  # no headway: tried again at the next change or sweep
        if (project, name) not in self.refused and not waiting and held.lines >= len(lines):
            held.sent = signature

    def _ask(self, project: str, name: str) -> _Held | None:
        answer = self._post(project, name, {}, 0, [])
        if answer is None:
            return None
        return _Held({int(n) for n in answer["versions"]}, int(answer.get("lines", 0)))

    def _post(
        self, project: str, name: str, manifests: dict[str, str], after: int, lines: list[str]
    ) -> dict[str, Any] | None:
        sent = {
            "origin": self.origin,
            "project": project,
            "name": name,
            "manifests": manifests,
            "after": after,
            "lines": lines,
        }
        try:
            return self.uplink.artifact_versions(sent)
        except UplinkError as error:
            if error.transient or error.status in (401, 403):
                raise
            self._refuse(project, name, str(error))
            return None

    def _send_files(self, project: str, name: str, number: int, data: bytes) -> str | None:
        """Upload the content files of a version the central server lacks; why not, if not."""
        project_dir = self.root / project
        try:
            entries = event_format.decode_document(data).get("entries") or {}
            wanted = sorted(
                {e["sha256"] for e in entries.values() if isinstance(e, dict) and "sha256" in e}
            )
        except (event_format.MalformedEvent, AttributeError, TypeError):
            return f"v{number}: its manifest cannot be read"
        for start in range(0, len(wanted), MAX_OBJECTS):
            for sha256 in self.uplink.lacking_objects(project, wanted[start : start + MAX_OBJECTS]):
                source = artifact_store.object_path(project_dir, sha256)
                try:
                    self.uplink.upload_object(project, sha256, source)
                    self.totals["object_bytes"] += source.stat().st_size
                except UplinkError as error:
                    if error.transient or error.status in (401, 403):
                        raise
                    return f"v{number}: its file {sha256} was refused: {error}"
                except OSError as error:
                    return f"v{number}: its file {sha256} cannot be read here: {error}"
                self.totals["objects"] += 1
        return None

    def _refuse(self, project: str, name: str, reason: str) -> None:
        self.refused[(project, name)] = f"the central server does not get it: {reason}"

    def _signature(self, project: str, name: str) -> tuple | None:
        """What changes when an artifact gets a version or a line: its manifests and the size
        of its version log; None when it has neither."""
        if not (names.is_valid(project) and names.is_valid(name)):
            return None
        folder = artifact_store.collection_dir(self.root / project, name)
        numbers = tuple(artifact_store.manifest_numbers(folder))
        try:
            size = (folder / artifact_store.LOG).stat().st_size
        except FileNotFoundError:
            size = -1
        return None if not numbers and size < 0 else (numbers, size)

    def status_refused(self) -> list[dict[str, str]]:
        return [
            {"artifact": f"{project}/{name}", "reason": reason}
            for (project, name), reason in list(self.refused.items())
        ]


def _log_lines(folder: Path) -> list[str]:
    """The version log's complete lines that its readers take, in order, as text."""
    try:
        data = (folder / artifact_store.LOG).read_bytes()
    except FileNotFoundError:
        return []
    lines = data.split(b"\n")[:-1]  # the last piece has no newline yet (or is empty)
    return [
        line.decode()
        for line in lines
        if line.strip() and artifact_store.log_line_problem(line) is None
    ]

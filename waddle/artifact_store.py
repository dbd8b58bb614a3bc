"""The artifact store of a project, ``<project>/.artifacts/``: versions, aliases and files.

Every run of a project logs into one store, next to the run folders (docs/format.md,
"Artifacts"); its folder starts with a dot, so it is never a project or a run for any reader::

    objects/<sha256>              each file of every version, stored once by its content
    collections/<name>/v<N>.json  one manifest per version, never rewritten
    collections/<name>/log.jsonl  the version log: a line per log_artifact() that reached it
    collections/<name>/.lock      held (flock) while a version is decided

It promises:

- a manifest under its final name is complete and never changes: it is written under a
  temporary name, fsynced, then hard-linked to ``v<N>.json``, which fails when that name
  exists (O_EXCL's rule, for a file complete before it appears), so two processes logging
  one name at once never take the same version number;
- the same content (the same digest) logged again makes no new version: the choice is made
  under the collection's lock, so two processes logging the same content at once make one;
- ``latest`` is the highest version; any other alias belongs to the version whose log line
  claimed it last;
- a reader takes only the complete lines of a version log; a malformed one is reported
  through ``on_reject(path, offset, reason)`` and skipped.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from waddle import event as event_format
from waddle import names
from waddle.values import check_text
from waddle.writer import fsync_dir

STORE = ".artifacts"
OBJECTS = "objects"
COLLECTIONS = "collections"
LOG = "log.jsonl"
MANIFEST_FORMAT = 1
LATEST = "latest"
MAX_TEXT = 128  # of an alias or a type, as W&B allows
MAX_PATH = 1024  # of a path inside an artifact

_MANIFEST = re.compile(r"v(0|[1-9][0-9]{0,17})\.json")
_VERSION = re.compile(r"v(0|[1-9][0-9]{0,17})")
_SHA256 = re.compile(r"[0-9a-f]{64}")

RejectHandler = Callable[[Path, int, str], None]


@dataclass
class Version:
    """One version of an artifact as the store knows it."""

    name: str
    number: int
    digest: str
    type: str
    size: int
    files: int
    created: float
    run: str | None  # the id of the run that made this version
    aliases: list[str] = field(default_factory=list)  # now, ``latest`` included when it is

    @property
    def label(self) -> str:
        return f"v{self.number}"


# --- names, as W&B takes them --------------------------------------------------------------


def check_name(name: Any) -> str:
    """An artifact's name: the name rule of projects and runs (waddle/names.py)."""
    if not names.is_valid(name):
        raise ValueError(
            f"artifact name {name!r} is not allowed: use {names.RULE_TEXT} (no '/' or ':')"
        )
    return name


def check_type(kind: Any) -> str:
    if type(kind) is not str or not kind or len(kind) > MAX_TEXT or set(kind) & set("/:"):
        raise ValueError(
            f"artifact type {kind!r} is not allowed: 1 to {MAX_TEXT} characters, no '/' or ':'"
        )
    return check_text("artifact type", kind)


def check_aliases(aliases: Any) -> list[str]:
    """W&B's aliases (None, one string or several) as a list without ``latest``, which always
    means the newest version; each is checked: no '/' or ':', and not a version (``v3``)."""
    if aliases is None:
        return []
    listed = [aliases] if isinstance(aliases, str) else list(aliases)
    checked: list[str] = []
    for alias in listed:
        if type(alias) is not str or not alias or len(alias) > MAX_TEXT or set(alias) & set("/:"):
            raise ValueError(
                f"artifact alias {alias!r} is not allowed: 1 to {MAX_TEXT} characters, no '/' or ':'"
            )
        if _VERSION.fullmatch(alias):
            raise ValueError(f"artifact alias {alias!r} would hide version {alias}: choose another")
        check_text("artifact alias", alias)
        if alias != LATEST and alias not in checked:
            checked.append(alias)
    return checked


def check_path(path: Any) -> str:
    """A path inside an artifact: relative, ``/``-separated, never climbing out (no ``..``),
    so that a download can never write outside its folder."""
    text = os.fspath(path) if isinstance(path, os.PathLike) else path
    if type(text) is not str or not text or len(text) > MAX_PATH or "\0" in text:
        raise ValueError(f"artifact path {path!r} is not allowed: give a relative file path")
    text = text.replace(os.sep, "/")
    pure = PurePosixPath(text)
    if pure.is_absolute() or ".." in pure.parts or not pure.parts or text.endswith("/"):
        raise ValueError(f"artifact path {path!r} is not allowed: give a relative file path")
    return check_text("artifact path", pure.as_posix())


def parse_reference(text: Any) -> tuple[str | None, str, str]:
    """``[entity/][project/]name[:alias or vN]`` as (project or None, name, alias or vN);
    the alias is ``latest`` when none is given."""
    if type(text) is not str or not text:
        raise ValueError(
            f"artifact {text!r}: give a name such as 'mnist', 'mnist:v2' or 'mnist:best'"
        )
    path, _, ref = text.partition(":")
    parts = path.split("/")
    if len(parts) > 3 or not all(parts):
        raise ValueError(f"artifact {text!r}: give [project/]name[:alias], e.g. 'mnist:latest'")
    project = names.check("project", parts[-2]) if len(parts) > 1 else None
    return project, check_name(parts[-1]), ref or LATEST


# --- where things are ----------------------------------------------------------------------


def collections_dir(project_dir: Path) -> Path:
    return Path(project_dir) / STORE / COLLECTIONS


def collection_dir(project_dir: Path, name: str) -> Path:
    return collections_dir(project_dir) / check_name(name)


def objects_dir(project_dir: Path) -> Path:
    return Path(project_dir) / STORE / OBJECTS


def object_path(project_dir: Path, sha256: str) -> Path:
    """Where the file with this content lies (a checked hex digest: never another path)."""
    if type(sha256) is not str or not _SHA256.fullmatch(sha256):
        raise ValueError(f"not a sha256 digest: {sha256!r}")
    return objects_dir(project_dir) / sha256


def collection_names(project_dir: Path) -> list[str]:
    """The artifact names of a project, sorted."""
    return names.folders(collections_dir(project_dir))


def digest(entries: dict[str, dict[str, Any]]) -> str:
    """The digest of a version: sha256 of its entries in path order, a file as
    ``path NUL sha256 LF`` and a reference as ``path NUL ref:uri LF`` (docs/format.md)."""
    hasher = hashlib.sha256()
    for path in sorted(entries):
        entry = entries[path]
        content = entry["sha256"] if "sha256" in entry else "ref:" + entry["ref"]
        hasher.update(f"{path}\0{content}\n".encode())
    return hasher.hexdigest()


# --- reading -------------------------------------------------------------------------------


def versions(project_dir: Path, name: str, on_reject: RejectHandler | None = None) -> list[Version]:
    """Every version of ``name`` in number order, with its aliases now; empty when none."""
    folder = collection_dir(project_dir, name)
    return _versions(folder, name, _log_lines(folder, on_reject))


def resolve(project_dir: Path, name: str, ref: str = LATEST) -> Version:
    """The version ``ref`` (``vN``, ``latest`` or another alias) names; LookupError naming
    what is missing otherwise."""
    found = versions(project_dir, name)
    if not found:
        raise LookupError(f"no artifact {name!r} in {project_dir}")
    version = pick(found, ref)
    if version is None:
        raise LookupError(f"artifact {name!r} has no version or alias {ref!r}")
    return version


def pick(found: list[Version], ref: str) -> Version | None:
    """The version of ``found`` that ``ref`` (``vN``, ``latest`` or another alias) names."""
    number = _version_number(ref)
    for version in found:
        if (version.number == number) if number is not None else ref in version.aliases:
            return version
    return None


def read_manifest(project_dir: Path, name: str, number: int) -> dict[str, Any]:
    """The manifest of version ``number`` of ``name`` (docs/format.md)."""
    return _manifest(collection_dir(project_dir, name), number)


def _manifest(folder: Path, number: int) -> dict[str, Any]:
    try:
        return event_format.decode_document((folder / f"v{number}.json").read_bytes())
    except FileNotFoundError:
        raise LookupError(f"artifact {folder.name!r} has no version v{number}") from None


def collection_type(project_dir: Path, name: str) -> str | None:
    """The type of the artifact ``name`` (its first version's), or None when it has none yet."""
    found = versions(project_dir, name)
    return found[0].type if found else None


def _version_number(ref: str) -> int | None:
    matched = _VERSION.fullmatch(ref)
    return int(matched.group(1)) if matched else None


def _manifest_numbers(folder: Path) -> list[int]:
    try:
        entries = os.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(int(m.group(1)) for m in map(_MANIFEST.fullmatch, entries) if m)


def _log_lines(folder: Path, on_reject: RejectHandler | None) -> list[dict[str, Any]]:
    """The complete, well-formed lines of a collection's version log, in order."""
    path = folder / LOG
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    lines = []
    offset = 0
    while (end := data.find(b"\n", offset)) >= 0:
        line, at, offset = data[offset:end], offset, end + 1
        if not line.strip():
            continue
        try:
            record = event_format.decode_document(line)
            problem = _log_line_problem(record)
        except event_format.MalformedEvent as error:
            problem = str(error)
        if problem is None:
            lines.append(record)
        elif on_reject is not None:
            on_reject(path, at, problem)
    return lines


def _log_line_problem(record: dict[str, Any]) -> str | None:
    if not event_format.is_int64(record.get("version"), low=0):
        return f"version is not a version number: {record.get('version')!r}"
    if type(record.get("t")) not in (int, float):
        return f"t is not a wall time: {record.get('t')!r}"
    for name in ("digest", "type"):
        if type(record.get(name)) is not str:
            return f"{name} is not a string"
    aliases = record.get("aliases")
    if type(aliases) is not list or not all(type(alias) is str for alias in aliases):
        return "aliases is not a list of strings"
    return None


def _versions(folder: Path, name: str, lines: list[dict[str, Any]]) -> list[Version]:
    numbers = _manifest_numbers(folder)
    made: dict[int, Version] = {}
    claims: dict[str, int] = {}
    present = set(numbers)
    for line in lines:
        number = line["version"]
        if number not in present:
            continue  # a line without its manifest says nothing
        if number not in made:
            made[number] = _version_of(name, number, line, line["t"])
        for alias in line["aliases"]:
            claims[alias] = number
    for number in numbers:
        if number not in made:  # the writer died between its manifest and its log line
            try:
                manifest = _manifest(folder, number)
            except (OSError, event_format.MalformedEvent, LookupError):
                continue
            made[number] = _version_of(name, number, manifest, manifest.get("created"))
    found = [made[number] for number in sorted(made)]
    for alias, number in claims.items():
        if number in made and alias != LATEST:
            made[number].aliases.append(alias)
    if found:
        found[-1].aliases.append(LATEST)
    return found


def _version_of(name: str, number: int, record: dict[str, Any], created: Any) -> Version:
    """A version from its manifest or the version log's line that made it (``created``: when)."""
    return Version(
        name=name,
        number=number,
        digest=str(record.get("digest")),
        type=str(record.get("type")),
        size=record.get("size") if type(record.get("size")) is int else 0,
        files=record.get("files") if type(record.get("files")) is int else 0,
        created=created if type(created) in (int, float) else 0.0,
        run=record.get("run") if type(record.get("run")) is str else None,
    )


# --- writing (a run's copier thread, waddle/copier.py) ----------------------------------------


def commit(
    project_dir: Path, manifest: dict[str, Any], aliases: list[str], t: float
) -> tuple[Version, bool]:
    """Record a version of ``manifest["name"]`` (a manifest without its ``version``): the
    existing version with the same digest, else a new one; then ``aliases`` point to it.
    Returns the version, with its aliases now, and whether it was made now.

    Raises ValueError when the artifact exists with another type."""
    name = manifest["name"]
    folder = collection_dir(project_dir, name)
    folder.mkdir(parents=True, exist_ok=True)
    with _locked(folder / ".lock"):
        lines = _log_lines(folder, None)
        known = _versions(folder, name, lines)
        if known and known[0].type != manifest["type"]:
            raise ValueError(
                f"artifact {name!r} is of type {known[0].type!r}, not {manifest['type']!r}: "
                "log it under another name"
            )
        same = next((v for v in known if v.digest == manifest["digest"]), None)
        number = same.number if same is not None else _create(folder, manifest, known)
        made = same is None
        version = same or _version_of(name, number, manifest, t)
        line = {
            "t": t,
            "version": number,
            "digest": version.digest,
            "created": made,
            "aliases": aliases,
            "run": manifest.get("run"),
            "type": version.type,
            "size": version.size,
            "files": version.files,
        }
        _append(folder / LOG, event_format.encode(line))
        now = _versions(folder, name, [*lines, line])
    return next(v for v in now if v.number == number), made


def _create(folder: Path, manifest: dict[str, Any], known: list[Version]) -> int:
    """Write the manifest as the next free ``v<N>.json``; returns N."""
    numbers = _manifest_numbers(folder)
    number = max([*numbers, *(v.number for v in known)], default=-1) + 1
    temp = folder / f".v{number}.{os.getpid()}.{threading.get_ident()}.tmp"
    try:
        while True:
            with open(temp, "wb") as file:
                file.write(event_format.encode({**manifest, "version": number}))
                file.flush()
                os.fsync(file.fileno())
            try:
                os.link(temp, folder / f"v{number}.json")
                break
            except FileExistsError:  # another process took it without the lock (NFS)
                number += 1
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
    fsync_dir(folder)
    return number


def _append(path: Path, line: bytes) -> None:
    """Append one whole line (after ending a line a killed writer left torn), and fsync."""
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            line = b"\n" + line
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive flock on ``path``; the kernel drops it if the process dies."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)

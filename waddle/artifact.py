"""``waddle.Artifact``: W&B's versioned bundle of files, kept in the project's artifact store.

An artifact is a draft while a script fills it (``add_file``, ``add_dir``, ``new_file``,
``add_reference``); ``run.log_artifact()`` turns it into a version of its name
(waddle/artifact_store.py), and ``run.use_artifact()`` or ``waddle.Api().artifact()`` give a
stored version back, to read or ``download()``. It promises:

- nothing slow on the caller's thread: adding a file only checks it and notes its size,
  modification time and inode (waddle/files.py ``stamp``); ``log_artifact()`` queues the
  artifact, and the run's copier thread (waddle/copier.py) copies and hashes the files into
  the store, while the writer thread goes on writing the run's events;
- the stored files are the ones ``add_file()`` saw: a file that changed between
  ``add_file()`` and its copy makes the copier refuse the whole version, with a notice and a
  count in ``finish.lost_values``, rather than store a file half rewritten. W&B's default
  ``policy="mutable"`` copies each file when it is added instead, so a change after
  ``add_file()`` is simply not seen there; here it is refused;
- a file deleted after ``log_artifact()`` returned is still stored: ``log_artifact()`` holds
  each file by a hard link in the project's store (``.artifacts/.held/``, one link per file,
  no copy) until the copier has copied it, where the file system allows (the same file system,
  links permitted); where it does not, a file gone before its copy is refused as above. A
  checkpoint rotated away right after it was logged (Lightning's top k) is kept so;
- references (``add_reference``) are recorded as given and never fetched, nor downloaded;
- what needs the version (``version``, ``aliases``, ``digest``, ``download()``, ...) of an
  artifact just logged waits until it is stored, as W&B's ``wait()`` does.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import IO, Any
from urllib.parse import urlparse

from waddle import artifact_store, files, media
from waddle import event as event_format
from waddle.artifact_store import Version
from waddle.notice import Notices
from waddle.settings import resolve_one
from waddle.values import check_text

POLICIES = ("mutable", "immutable")
_notices = Notices()


class ArtifactNotLoggedError(AttributeError):
    """What needs a logged version was asked of a draft (W&B's error of that name)."""


class ArtifactFinalizedError(ValueError):
    """A logged artifact was changed (W&B's error of that name): make a new draft instead."""


class ArtifactManifestEntry:
    """One file or reference of an artifact, by its path inside it (W&B's name)."""

    def __init__(
        self,
        path: str,
        *,
        size: int | None = None,
        ref: str | None = None,
        sha256: str | None = None,
        source: Path | None = None,
        stamp: tuple[int, int, int] | None = None,
        artifact: Artifact | None = None,
    ) -> None:
        self.path = path
        self.size = size
        self.ref = ref
        self.sha256 = sha256  # known once stored
        self.extra: dict[str, Any] = {}
        self._source = source  # the file to copy: the one added, or the stored object
        self._stamp = stamp  # of a file added, when it was added
        self._artifact = artifact

    @property
    def name(self) -> str:
        """The path (W&B's artifact files have a ``name``)."""
        return self.path

    @property
    def digest(self) -> str | None:
        """The file's sha256 once stored (W&B: an MD5), or a reference's URI."""
        return self.ref if self.ref is not None else self.sha256

    @property
    def local_path(self) -> str | None:
        return None if self._source is None else str(self._source)

    def download(
        self, root: str | os.PathLike | None = None, skip_cache: bool | None = None
    ) -> str:
        """Copy this file of a logged artifact to ``root/<path>``; the path written."""
        artifact = self._artifact
        if artifact is None or self.ref is not None:
            raise ValueError(f"{self.path!r} is a reference: it is recorded, never fetched")
        return str(artifact._place(self, artifact._root(root)))

    def __repr__(self) -> str:
        what = f"ref={self.ref!r}" if self.ref is not None else f"size={self.size}"
        return f"ArtifactManifestEntry(path={self.path!r}, digest={self.digest!r}, {what})"


class ArtifactManifest:
    """The entries of an artifact by path."""

    def __init__(self, entries: dict[str, ArtifactManifestEntry]) -> None:
        self.entries = entries

    def get_entry_by_path(self, path: str) -> ArtifactManifestEntry | None:
        return self.entries.get(path)

    def __len__(self) -> int:
        return len(self.entries)


class Artifact:
    """A draft to fill and log, or a version read back from the store."""

    def __init__(
        self,
        name: str,
        type: str,
        description: str | None = None,
        metadata: dict[str, Any] | None = None,
        incremental: bool = False,
        use_as: str | None = None,
        storage_region: str | None = None,
        digest_algorithm: Any = None,
    ) -> None:
        self._name = artifact_store.check_name(name)
        self.type = artifact_store.check_type(type)
        self.description = description
        self.metadata = dict(metadata) if metadata is not None else {}
        self.incremental = incremental
        self.use_as = use_as
        self.tags: list[str] = []
        self.ttl = None
        self._entries: dict[str, ArtifactManifestEntry] = {}
        self._tmp: tempfile.TemporaryDirectory | None = None  # new_file()'s files
        self._project_dir: Path | None = None
        # Read back through a server (waddle/apis/remote.py): what copies a stored file to a
        # path, and the Api that read it; None: the local store, and an Api of its folder.
        self._fetch: Callable[[ArtifactManifestEntry, Path], None] | None = None
        self._reader: Any = None
        self._stored: Version | None = None  # the version, once known on this side
        self._logging: Any = None  # the run that stores it, while it does
        self._outcome: tuple | None = None  # set by the copier: ("stored", …) or ("failed", why)

    # ---- filling a draft -------------------------------------------------------------

    def add_file(
        self,
        local_path: str | os.PathLike,
        name: str | None = None,
        is_tmp: bool | None = False,
        skip_cache: bool | None = False,
        policy: str | None = "mutable",
        overwrite: bool = False,
    ) -> ArtifactManifestEntry:
        """Add a file as ``name`` (default: its file name); it is copied when the artifact is
        logged, and must not change until then (see the module docstring)."""
        self._check_draft("add_file")
        _check_policy(policy)
        source = media.existing_file("add_file()", local_path)
        path = artifact_store.check_path(name if name is not None else source.name)
        stamp = files.stamp(source)
        if is_tmp:  # W&B names a temporary file by its content
            folder, _, file_name = path.rpartition("/")
            _, dot, rest = file_name.partition(".")
            path = (folder + "/" if folder else "") + _sha256(source)[:20] + dot + rest
        entry = ArtifactManifestEntry(
            path, size=stamp[0], source=source, stamp=stamp, artifact=self
        )
        return self._add(entry, overwrite)

    def add_dir(
        self,
        local_path: str | os.PathLike,
        name: str | None = None,
        skip_cache: bool | None = False,
        policy: str | None = "mutable",
        merge: bool = False,
    ) -> None:
        """Add every file under ``local_path``, as ``name/<path in the folder>``."""
        self._check_draft("add_dir")
        folder = Path(os.fspath(local_path))
        if not folder.is_dir():
            raise ValueError(f"add_dir(): {str(local_path)!r} is not a directory")
        found = []
        for parent, _, file_names in os.walk(folder, followlinks=True):
            found.extend(Path(parent) / file_name for file_name in file_names)
        prefix = artifact_store.check_path(name) + "/" if name else ""
        for path in sorted(found):
            logical = prefix + path.relative_to(folder).as_posix()
            self.add_file(path, name=logical, policy=policy, overwrite=merge)

    @contextlib.contextmanager
    def new_file(
        self, name: str, mode: str = "x", encoding: str | None = None, policy: str = "mutable"
    ) -> Iterator[IO]:
        """``with artifact.new_file("labels.txt") as f: f.write(...)``: a file written into
        the artifact (kept in a temporary folder until the artifact is stored)."""
        self._check_draft("new_file")
        path = artifact_store.check_path(name)
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="waddle-artifact-")
        target = Path(self._tmp.name) / path
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(target, mode, encoding=encoding) as file:
                yield file
        except FileExistsError:
            raise ValueError(f"new_file(): {name!r} was already written") from None
        self.add_file(target, name=path, policy=policy, overwrite="x" not in mode)

    def add_reference(
        self,
        uri: str | ArtifactManifestEntry,
        name: str | os.PathLike | None = None,
        checksum: bool = True,
        max_objects: int | None = None,
    ) -> list[ArtifactManifestEntry]:
        """Record a URI (``s3://…``, ``gs://…``, ``https://…``, ``file://…``) as one entry,
        named as W&B names a reference to one object. It is never fetched: not to check it,
        not to list what a prefix holds, not by ``download()``."""
        self._check_draft("add_reference")
        if isinstance(uri, ArtifactManifestEntry):
            uri, name = uri.ref or uri.path, name if name is not None else uri.path
        if type(uri) is not str or not uri:
            raise TypeError(f"add_reference(): the URI must be a string, got {uri!r}")
        check_text("add_reference() URI", uri)
        path = artifact_store.check_path(
            name if name is not None else _reference_name(uri, checksum)
        )
        return [self._add(ArtifactManifestEntry(path, ref=uri, artifact=self), overwrite=False)]

    def remove(self, item: str | os.PathLike | ArtifactManifestEntry) -> None:
        """Take a path (or everything under a folder path) out of a draft."""
        self._check_draft("remove")
        path = item.path if isinstance(item, ArtifactManifestEntry) else os.fspath(item)
        path = str(path).rstrip("/")
        gone = [key for key in self._entries if key == path or key.startswith(path + "/")]
        if not gone:
            raise FileNotFoundError(f"artifact {self._name!r} has no entry {path!r}")
        for key in gone:
            del self._entries[key]

    def _add(self, entry: ArtifactManifestEntry, overwrite: bool) -> ArtifactManifestEntry:
        old = self._entries.get(entry.path)
        if old is not None and not overwrite and not _same(old, entry):
            raise ValueError(
                f"artifact {self._name!r} already has {entry.path!r}; pass overwrite=True "
                "(add_dir: merge=True) to replace it"
            )
        self._entries[entry.path] = entry
        return entry

    def _check_draft(self, what: str) -> None:
        if not self.is_draft():
            raise ArtifactFinalizedError(
                f"artifact {self.name!r} is logged and cannot change ({what}); "
                "make a new one with artifact.new_draft()"
            )

    # ---- reading ---------------------------------------------------------------------

    def is_draft(self) -> bool:
        return self._stored is None and self._logging is None

    @property
    def name(self) -> str:
        """The name; ``name:vN`` once the version is known (as W&B's)."""
        return self._name if self._stored is None else f"{self._name}:{self._stored.label}"

    @property
    def source_name(self) -> str:
        return self.name

    @property
    def qualified_name(self) -> str:
        return f"{self.entity}/{self.project}/{self.name}"

    @property
    def entity(self) -> str:
        return "local"

    @property
    def project(self) -> str | None:
        return None if self._project_dir is None else self._project_dir.name

    @property
    def id(self) -> str | None:
        return None if self._stored is None else f"{self.project}/{self.name}"

    @property
    def version(self) -> str:
        """``vN``: waits until an artifact just logged is stored."""
        return self._version("version").label

    @property
    def source_version(self) -> str:
        return self.version

    @property
    def aliases(self) -> list[str]:
        """The version's aliases when it was stored or read (``latest`` while it was newest)."""
        return list(self._version("aliases").aliases)

    @property
    def digest(self) -> str:
        """sha256 of the entries (docs/format.md); a draft's files are hashed now to tell it."""
        if self.is_draft():
            entries = {path: _entry_record(entry) for path, entry in self._entries.items()}
            return artifact_store.digest(entries)
        return self._version("digest").digest

    @property
    def size(self) -> int:
        """Bytes of the files (references count nothing: they are not fetched)."""
        return sum(entry.size or 0 for entry in self._entries.values() if entry.ref is None)

    @property
    def file_count(self) -> int:
        return len(self._entries)

    @property
    def manifest(self) -> ArtifactManifest:
        return ArtifactManifest(dict(self._entries))

    @property
    def state(self) -> str:
        return "COMMITTED" if self._stored is not None else "PENDING"

    @property
    def created_at(self) -> str | None:
        if self._stored is None:
            return None
        return datetime.fromtimestamp(self._stored.created, timezone.utc).isoformat()

    updated_at = created_at

    def files(
        self, names: list[str] | None = None, per_page: int = 50, start: str | None = None
    ) -> list[ArtifactManifestEntry]:
        """The entries (with ``name``, ``size`` and ``download()``), those in ``names`` only
        when given."""
        return [e for path, e in self._entries.items() if names is None or path in names]

    def get_entry(self, name: str | os.PathLike) -> ArtifactManifestEntry:
        path = os.fspath(name)
        entry = self._entries.get(path)
        if entry is None:
            raise KeyError(f"Path not contained in artifact {self._name!r}: {path!r}")
        return entry

    get_path = get_entry

    def wait(self, timeout: int | None = None) -> Artifact:
        """Wait until an artifact just logged is stored (and its event written); raises
        RuntimeError saying why when it could not (a file changed, another type)."""
        self._version("wait", timeout)
        return self

    def download(
        self,
        root: str | os.PathLike | None = None,
        allow_missing_references: bool = False,
        skip_cache: bool | None = None,
        path_prefix: str | os.PathLike | None = None,
        multipart: bool | None = None,
    ) -> str:
        """Copy the files of the version into ``root`` (default: W&B's
        ``./artifacts/<name>:v<N>``, under ``WADDLE_ARTIFACT_DIR``); the folder. A file
        already there with the same content is left as it is; references are not fetched."""
        self._version("download")
        folder = self._root(root)
        prefix = None if path_prefix is None else os.fspath(path_prefix)
        references = 0
        for entry in self._entries.values():
            if prefix is not None and not entry.path.startswith(prefix):
                continue
            if entry.ref is not None:
                references += 1
                continue
            self._place(entry, folder)
        if references:
            _notices.show(
                f"download-references-{self._name}",
                f"download() of {self.name}: {references} reference(s) are recorded, not "
                "fetched (get_entry(path).ref gives each URI)",
            )
        return str(folder)

    def logged_by(self) -> Any:
        """The run (``waddle.Api`` run) that made this version, or None."""
        version = self._version("logged_by")
        if version.run is None:
            return None
        return self._api().run(f"{self.project}/{version.run}")

    def used_by(self) -> list[Any]:
        """The runs (``waddle.Api`` runs) of the project that used this version (every run's
        events are read to tell)."""
        version = self._version("used_by")
        return [
            run
            for run in self._api().runs(self.project)
            if any(
                (used.project, used._name, used._stored.number)
                == (self.project, self._name, version.number)
                for used in run.used_artifacts()
            )
        ]

    def new_draft(self) -> Artifact:
        """A draft holding the same entries, to change and log as a new version."""
        draft = Artifact(self._name, self.type, self.description, dict(self.metadata))
        for path, entry in self._entries.items():
            draft._entries[path] = ArtifactManifestEntry(
                path,
                size=entry.size,
                ref=entry.ref,
                sha256=entry.sha256,
                source=entry._source,
                stamp=entry._stamp,
                artifact=draft,
            )
        draft._tmp = self._tmp
        return draft

    # ---- the version -----------------------------------------------------------------

    def _version(self, what: str, timeout: float | None = None) -> Version:
        if self._stored is not None:
            return self._stored
        run = self._logging
        if run is None:
            raise ArtifactNotLoggedError(
                f"Artifact.{what} needs a logged version: log the artifact first "
                "(run.log_artifact(artifact)), or read one with run.use_artifact('name:latest')"
            )
        wait = math.inf if timeout is None else timeout
        if not run._wait_for_artifacts(lambda: self._outcome is not None, wait):
            raise RuntimeError(
                f"artifact {self._name!r} is not stored yet: run {run.id} did not get to it "
                "(timed out, or the run belongs to another process)"
            )
        outcome = self._outcome
        if outcome[0] == "failed":
            raise RuntimeError(f"artifact {self._name!r} was not stored: {outcome[1]}")
        run._flush_events(wait)  # and its event written
        _, version, project_dir, entries = outcome
        self._settle(project_dir, version, entries)
        return version

    def _settle(self, project_dir: Path, version: Version, entries: dict[str, dict]) -> None:
        """Become the stored ``version`` of ``project_dir``'s store, with its ``entries``."""
        self._project_dir = project_dir
        self._entries = {
            path: _stored_entry(project_dir, path, record, self) for path, record in entries.items()
        }
        self._stored = version
        self._logging = None

    def _root(self, root: str | os.PathLike | None) -> Path:
        if root is not None:
            return Path(os.fspath(root))
        label = self._version("download").label
        return Path(resolve_one("artifact_dir")).expanduser().absolute() / f"{self._name}:{label}"

    def _place(self, entry: ArtifactManifestEntry, folder: Path) -> Path:
        """Copy a stored file into ``folder`` at its path (unless it is there already)."""
        target = folder / artifact_store.check_path(entry.path)
        if (
            target.is_file()
            and target.stat().st_size == entry.size
            and _sha256(target) == entry.sha256
        ):
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            if self._fetch is not None:
                self._fetch(entry, temp)
            else:
                shutil.copyfile(artifact_store.object_path(self._project_dir, entry.sha256), temp)
            os.replace(temp, target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
        return target

    def _api(self) -> Any:
        if self._reader is not None:
            return self._reader
        from waddle.apis.public import Api

        return Api(overrides={"dir": str(self._project_dir.parent)})

    def __repr__(self) -> str:
        return f"<Artifact {self.name}{' (draft)' if self.is_draft() else ''}>"


def load(project_dir: Path, version: Version) -> Artifact:
    """The stored ``version`` of ``project_dir``'s store as an Artifact."""
    manifest = artifact_store.read_manifest(project_dir, version.name, version.number)
    return settled(project_dir, version, manifest)


def settled(
    project_dir: Path,
    version: Version,
    manifest: dict[str, Any],
    fetch: Callable[[ArtifactManifestEntry, Path], None] | None = None,
    reader: Any = None,
) -> Artifact:
    """``version`` with its ``manifest`` as an Artifact; read through a server, ``fetch``
    copies a stored file to a path and ``reader`` is the Api that read it (the project's name
    is then ``project_dir``'s, and its files are not local)."""
    artifact = Artifact(version.name, version.type, manifest.get("description"))
    metadata = manifest.get("metadata")
    artifact.metadata = metadata if isinstance(metadata, dict) else {}
    artifact.tags = list(manifest.get("tags") or [])
    artifact._settle(project_dir, version, manifest.get("entries") or {})
    if fetch is not None:
        artifact._fetch, artifact._reader = fetch, reader
        for entry in artifact._entries.values():
            entry._source = None  # no local path
    return artifact


# ---- logging: the caller's side, then the copier's -------------------------------------


def as_artifact(artifact_or_path: Any, name: str | None, type: str | None, run_id: str) -> Artifact:
    """What ``log_artifact()`` takes, as W&B reads it: an Artifact, or a file, a folder or a
    URI made into one named ``run-<run id>-<file name>`` (or ``name``) of type ``type``."""
    if isinstance(artifact_or_path, Artifact):
        return artifact_or_path
    if not isinstance(artifact_or_path, (str, os.PathLike)):
        raise TypeError(
            "log_artifact() takes a waddle.Artifact, or the path of a file or folder, or a URI"
        )
    text = os.fspath(artifact_or_path)
    artifact = Artifact(
        name or f"run-{run_id}-{os.path.basename(text.rstrip('/'))}", type or "unspecified"
    )
    if os.path.isfile(text):
        artifact.add_file(text)
    elif os.path.isdir(text):
        artifact.add_dir(text)
    elif "://" in text:
        artifact.add_reference(text)
    else:
        raise ValueError(
            f"log_artifact(): {text!r} is no file, folder or reference such as s3://bucket/path"
        )
    return artifact


def use_fields(artifact: Artifact, aliases: list[str], use_as: str | None) -> dict[str, Any]:
    """The ``artifact`` event of a run using the stored ``artifact``."""
    version = artifact._stored
    fields = {
        "action": "use",
        "project": artifact.project,
        "name": artifact._name,
        "version": version.number,
        "artifact_type": artifact.type,
        "digest": version.digest,
        "aliases": aliases,
    }
    if use_as is not None:
        fields["use_as"] = str(use_as)
    return fields


def log_request(
    artifact: Artifact,
    run: Any,
    action: str,
    aliases: list[str],
    tags: list[str] | None,
    t: float,
) -> Callable[[Path], dict[str, Any]]:
    """Check ``artifact`` and take what storing it needs; the returned function, which the
    run's copier (waddle/copier.py) calls with the run folder, stores it (:func:`_store`) and
    gives the fields of its ``artifact`` event."""
    if not isinstance(artifact.metadata, dict):
        raise TypeError(f"artifact {artifact._name!r}: metadata must be a dict")
    if artifact.description is not None and type(artifact.description) is not str:
        raise TypeError(f"artifact {artifact._name!r}: description must be a string")
    try:
        event_format.encode({"metadata": artifact.metadata, "description": artifact.description})
    except TypeError as error:
        raise ValueError(f"artifact {artifact._name!r} cannot be stored: {error}") from None
    if tags is not None:
        artifact.tags = [check_text("artifact tag", str(tag)) for tag in tags]
    existing = artifact_store.collection_type(run.dir.parent, artifact._name)
    if existing is not None and existing != artifact.type:
        raise ValueError(
            f"artifact {artifact._name!r} is of type {existing!r} in project {run.project!r}, "
            f"not {artifact.type!r}: log it under another name"
        )
    request = {
        "action": action,
        "aliases": aliases,
        "entries": list(artifact._entries.values()),
        "manifest": {
            "format": artifact_store.MANIFEST_FORMAT,
            "name": artifact._name,
            "type": artifact.type,
            "description": artifact.description,
            "metadata": dict(artifact.metadata),
            "tags": list(artifact.tags),
            "run": run.id,
        },
        "t": t,
        "use_as": artifact.use_as,
        "keep": artifact._tmp,  # new_file()'s folder lives until the copy is done
    }
    artifact._logging = run  # a version read back and logged again: stored anew
    artifact._stored = None
    artifact._outcome = None
    # The project's store, whichever rank's folder the copier works in (waddle/ranks.py).
    project_dir = run.dir.parent
    request["held"] = _hold(project_dir, request["entries"])
    return lambda _stream_dir: _store(project_dir, artifact, request)


HELD = ".held"  # in the project's store: links to files logged and not copied yet


def _hold(project_dir: Path, entries: list[ArtifactManifestEntry]) -> tuple[Path | None, dict]:
    """Hard links to the entries' files, taken now, so that the copier finds each file's
    content even if it is deleted meanwhile; (their folder, entry path -> link). Empty where
    the file system refuses links (then the copier reads the files themselves)."""
    sources = [entry for entry in entries if entry.ref is None and entry._source is not None]
    if not sources:
        return None, {}
    held_root = project_dir / artifact_store.STORE / HELD
    try:
        held_root.mkdir(parents=True, exist_ok=True)
        _release_abandoned(held_root)
        folder = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=held_root))
    except OSError:
        return None, {}
    links = {}
    for number, entry in enumerate(sources):
        link = folder / str(number)
        try:
            os.link(entry._source, link)
        except OSError:  # another file system, links not allowed, the file gone already
            continue
        links[entry.path] = link
    return folder, links


def _release_abandoned(held_root: Path) -> None:
    """Remove the holds of processes that ended before their copier was done (a kill -9)."""
    for folder in held_root.iterdir():
        pid = folder.name.partition("-")[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _store(project_dir: Path, artifact: Artifact, request: dict[str, Any]) -> dict[str, Any]:
    """The copier's thread: copy the files into the store, record the version, and give the
    ``artifact`` event's fields; tell ``artifact`` how it went either way."""
    held_folder, links = request["held"]
    try:
        entries = {
            entry.path: _copy_in(project_dir, entry, links.get(entry.path))
            for entry in request["entries"]
        }
        stored = [entry for entry in entries.values() if "sha256" in entry]
        manifest = {
            **request["manifest"],
            "digest": artifact_store.digest(entries),
            "created": request["t"],
            "size": sum(entry["size"] for entry in stored),
            "files": len(entries),
            "entries": dict(sorted(entries.items())),
        }
        version, made = artifact_store.commit(
            project_dir, manifest, request["aliases"], request["t"]
        )
    except Exception as error:
        artifact._outcome = ("failed", str(error))
        raise
    finally:
        if held_folder is not None:
            shutil.rmtree(held_folder, ignore_errors=True)
    if not made:  # the content was there: the entries are those of that version
        entries = artifact_store.read_manifest(project_dir, version.name, version.number)["entries"]
    artifact._outcome = ("stored", version, project_dir, entries)
    fields = {
        "action": request["action"],
        "project": project_dir.name,
        "name": version.name,
        "version": version.number,
        "artifact_type": version.type,
        "digest": version.digest,
        "aliases": request["aliases"],
        "created": made,
        "size": version.size,
        "files": version.files,
    }
    if request["use_as"] is not None:
        fields["use_as"] = str(request["use_as"])
    return fields


def _copy_in(project_dir: Path, entry: ArtifactManifestEntry, held: Path | None) -> dict[str, Any]:
    """One entry's manifest record, its file copied into the store first: from ``held``, the
    link :func:`_hold` took to it (the same inode: its stamp is the file's), if any."""
    if entry.ref is not None:
        return {"ref": entry.ref}
    if entry.sha256 is not None and artifact_store.object_path(project_dir, entry.sha256).is_file():
        return {"sha256": entry.sha256, "size": entry.size}
    source = held if held is not None else entry._source
    try:
        stored = media.store_file(
            project_dir / artifact_store.STORE, source, "", folder=artifact_store.OBJECTS
        )
        unchanged = entry._stamp is None or files.stamp(source) == entry._stamp
    except FileNotFoundError:
        unchanged = False
    if not unchanged:
        raise RuntimeError(
            f"{entry._source} changed (or went away) after add_file() and before it was "
            "copied; add it again once it is written, then log the artifact again"
        )
    return {"sha256": stored["sha256"], "size": stored["bytes"]}


def _stored_entry(
    project_dir: Path, path: str, record: dict[str, Any], artifact: Artifact
) -> ArtifactManifestEntry:
    if "ref" in record:
        return ArtifactManifestEntry(path, ref=record["ref"], artifact=artifact)
    sha256 = record["sha256"]
    return ArtifactManifestEntry(
        path,
        size=record.get("size"),
        sha256=sha256,
        source=artifact_store.object_path(project_dir, sha256),
        artifact=artifact,
    )


def _entry_record(entry: ArtifactManifestEntry) -> dict[str, Any]:
    """An entry as its manifest record, a draft's file hashed now."""
    if entry.ref is not None:
        return {"ref": entry.ref}
    return {"sha256": entry.sha256 or _sha256(entry._source), "size": entry.size}


def _reference_name(uri: str, checksum: bool) -> str:
    """The entry name W&B gives a reference to one object: for ``s3://`` and ``gs://`` its
    key (its file name when W&B would checksum it), for ``http(s)://`` and ``file://`` its file
    name. W&B asks for a name for any other scheme, and so does waddle."""
    parsed = urlparse(uri)
    if parsed.scheme in ("s3", "gs"):
        key = parsed.path.lstrip("/")
        return (PurePosixPath(key).name if checksum else key) or parsed.netloc
    if parsed.scheme in ("http", "https", "file"):
        return PurePosixPath(parsed.path).name or parsed.netloc
    raise ValueError(
        f'add_reference({uri!r}): pass name="<entry name>" for a reference of this scheme'
    )


def _same(old: ArtifactManifestEntry, new: ArtifactManifestEntry) -> bool:
    return (old.ref, old._source, old._stamp, old.sha256) == (
        new.ref,
        new._source,
        new._stamp,
        new.sha256,
    )


def _check_policy(policy: str | None) -> None:
    if policy is not None and policy not in POLICIES:
        raise ValueError(f"policy {policy!r} is not one of {', '.join(POLICIES)}")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()

"""A connection to a waddle server: the relay's three requests of docs/api.md, "Relaying", and
the reads of ``waddle.Api()`` (:meth:`Uplink.get`, :meth:`Uplink.download`).

An :class:`Uplink` speaks HTTP/1.1 over one kept-alive connection (Python's ``http.client``:
no dependency beyond the standard library), with the token as a bearer header. It promises:

- ``https://`` URLs are verified: the certificate must be valid for the host, by the system's
  trusted authorities (``SSL_CERT_FILE`` names another bundle, e.g. a company CA); a URL may
  carry a path (a server behind a reverse proxy at ``https://host/waddle``);
- every failure is an :class:`UplinkError` saying whether it can pass by itself (``transient``:
  unreachable, a timeout, 5xx, 409, 429) or needs a person (a refused token, a refused
  batch); the token is never part of its message;
- a file is uploaded from disk in pieces, never held whole in memory.
"""

from __future__ import annotations

import http.client
import os
import shutil
import socket
import ssl
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote, urlencode, urlsplit

import orjson
from waddle.server import ingest_body

# Seconds a request may wait for the server (a batch is fsynced before it is answered).
TIMEOUT = 60.0


class UplinkError(Exception):
    """A request that failed; ``transient`` when retrying later may work by itself."""

    def __init__(self, message: str, transient: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.transient, self.status = transient, status


class Uplink:
    def __init__(self, url: str, token: str | None, timeout: float = TIMEOUT) -> None:
        parts = urlsplit(url)
        self.url = url
        self._https = parts.scheme == "https"
        self._host, self._port = parts.hostname, parts.port
        self._base = parts.path.rstrip("/")
        self._token = token
        self._timeout = timeout
        self._context = ssl.create_default_context() if self._https else None
        self._connection: http.client.HTTPConnection | None = None

    def __repr__(self) -> str:  # never the token
        return f"Uplink({self.url!r})"

    # --- the requests ---

    def ingest(self, origin: str, chunks: list[ingest_body.Chunk]) -> list[dict]:
        """Send the chunks; per chunk the central server's answer (``acked``, ``id``)."""
        body = ingest_body.encode(origin, chunks)
        answer = self._request(
            "POST",
            "/api/ingest",
            body,
            {"Content-Type": "application/x-waddle-batch", "Content-Encoding": "gzip"},
        )
        runs = answer.get("runs") if isinstance(answer, dict) else None
        if not isinstance(runs, list) or len(runs) != len(chunks):
            raise UplinkError(f"{self.url} answered a batch with {answer!r:.200}", transient=True)
        return runs

    def lacking(self, origin: str, project: str, run: str, paths: list[str]) -> list[str]:
        body = orjson.dumps({"origin": origin, "project": project, "run": run, "paths": paths})
        answer = self._request(
            "POST", "/api/ingest/lacking", body, {"Content-Type": "application/json"}
        )
        return list(answer.get("lacking", ())) if isinstance(answer, dict) else []

    def upload(self, origin: str, project: str, run: str, path: str, source: Path) -> bool:
        """Upload one stored file; True when the server kept it, False when it had it."""
        where = "/".join(quote(part, safe="") for part in (origin, project, run))
        with open(source, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            answer = self._request(
                "PUT",
                f"/api/ingest/files/{where}/{quote(path)}",
                file,
                {"Content-Type": "application/octet-stream", "Content-Length": str(size)},
            )
        return bool(answer.get("stored")) if isinstance(answer, dict) else False

    # --- reading ---

    def get(self, path: str, params: Any = None, raw: bool = False) -> Any:
        """GET ``path`` with the query ``params`` (a mapping, or pairs to repeat a name): the
        JSON answer, or its bytes with ``raw``."""
        query = f"?{urlencode(params, doseq=True)}" if params else ""
        return self._request("GET", path + query, None, {}, raw=raw)

    def download(self, path: str, sink: BinaryIO) -> None:
        """GET ``path`` into the file ``sink``, piece by piece (never whole in memory)."""
        self._request("GET", path, None, {}, sink=sink)

    # --- HTTP ---

    def _exchange(
        self, method: str, path: str, body: Any, headers: dict[str, str], sink: BinaryIO | None
    ) -> tuple[http.client.HTTPResponse, bytes]:
        connection = self._connect()
        connection.request(method, self._base + path, body=body, headers=headers)
        response = connection.getresponse()
        if sink is not None and response.status < 300:
            sink.seek(0)
            sink.truncate()
            shutil.copyfileobj(response, sink, 1 << 20)
            return response, b""
        return response, response.read()

    def _connect(self) -> http.client.HTTPConnection:
        if self._connection is None:
            if self._https:
                self._connection = http.client.HTTPSConnection(
                    self._host, self._port, timeout=self._timeout, context=self._context
                )
            else:
                self._connection = http.client.HTTPConnection(
                    self._host, self._port, timeout=self._timeout
                )
        return self._connection

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _request(
        self,
        method: str,
        path: str,
        body: Any,
        headers: dict[str, str],
        raw: bool = False,
        sink: BinaryIO | None = None,
    ) -> Any:
        headers = {**headers, "Accept": "application/json"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        try:
            try:
                response, data = self._exchange(method, path, body, headers, sink)
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # A kept-alive connection the server closed meanwhile: once more on a new one
                # (every request here may be repeated: the central server ignores repeats).
                self.close()
                if hasattr(body, "seek"):
                    body.seek(0)
                response, data = self._exchange(method, path, body, headers, sink)
        except ssl.SSLCertVerificationError as error:
            self.close()
            raise UplinkError(
                f"the certificate of {self.url} is not trusted ({error.verify_message}); "
                "SSL_CERT_FILE can name the authority that signed it",
                transient=False,
            ) from None
        except (OSError, http.client.HTTPException) as error:
            self.close()
            raise UplinkError(
                f"cannot reach {self.url}: {_reason(error)}", transient=True
            ) from None
        if response.will_close:
            self.close()
        status = response.status
        if status < 300 and (raw or sink is not None):
            return data
        if status < 300:
            try:
                return orjson.loads(data) if data else {}
            except orjson.JSONDecodeError:
                raise UplinkError(
                    f"{self.url} answered {status} with something that is not JSON: is it a "
                    "waddle server?",
                    transient=True,
                    status=status,
                ) from None
        message = _error_message(data) or response.reason
        transient = status >= 500 or status in (408, 409, 429)
        raise UplinkError(f"{self.url} refused: {status} {message}", transient, status)


def _reason(error: BaseException) -> str:
    if isinstance(error, socket.timeout | TimeoutError):
        return "no answer in time"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused (is the server running?)"
    return getattr(error, "strerror", None) or str(error) or type(error).__name__


def _error_message(data: bytes) -> str | None:
    try:
        return str(orjson.loads(data)["error"]["message"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None

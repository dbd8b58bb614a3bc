"""The HTTP and WebSocket application: ``create_app()`` wires the index, the indexer, the
watcher and the live hub to the routers, and starts and stops them with the server.

It promises: JSON everywhere through :mod:`waddle.server.wire` (non-finite floats as strings),
one error shape (:mod:`waddle.server.errors`), OpenAPI at /docs, and no request served that
:mod:`waddle.server.access` refuses (a foreign Host or Origin; without a token, if set; an
ingest without a full token). Relays send to it (server/intake.py); with ``relay_to`` it
relays its own folder to another server too (server/relay.py).
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from waddle.server import errors, wire
from waddle.server.access import Access
from waddle.server.artifact_intake import ArtifactIntake
from waddle.server.hub import Hub
from waddle.server.indexer import Indexer
from waddle.server.intake import Intake
from waddle.server.notices import Notices
from waddle.server.recorded import RecordedFiles
from waddle.server.relay import Relay, Scope
from waddle.server.routes import (
    artifacts,
    dashboard,
    files,
    history,
    ingest,
    live,
    projects,
    records,
    runs,
    scalars,
)
from waddle.server.settings import ServerSettings
from waddle.server.store import Store
from waddle.server.uplink import Uplink
from waddle.server.watcher import Watcher

API_VERSION = 1


class Context:
    """What the routes reach through ``request.app.state.waddle``."""

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        # Every token the server takes (given and from the file), read once at start.
        self.tokens = settings.tokens()
        self.root = Path(settings.dir)
        self.notices = Notices("waddle serve")
        self.store = Store(Path(settings.db))
        self.indexer = Indexer(self.store, self.root, notices=self.notices)
        self.watcher = Watcher(
            self.root, self.indexer.mark, mode=settings.watcher, notices=self.notices
        )
        self.hub = Hub(self.store, settings.heartbeat_timeout, self.notices)
        self.files = RecordedFiles()
        self.indexer.listeners.append(self.hub.on_commit)
        self.intake = Intake(self.root, self.notices)
        self.artifact_intake = ArtifactIntake(self.root)
        self.relay: Relay | None = None
        if settings.relay_to:
            token = self.tokens.first_full()
            if token is None:
                raise ValueError("--relay-to needs a full token to send: --token or --token-file")
            uplink = Uplink(settings.relay_to, token)
            self.relay = Relay(Scope(self.root), uplink, settings.origin, self.notices)

    def start(self) -> None:
        self.hub.bind_loop()
        self.indexer.start()
        self.watcher.start()
        if self.relay is not None:
            self.relay.start()

    def stop(self) -> None:
        if self.relay is not None:
            self.relay.stop()
        self.hub.close()
        self.watcher.stop()
        self.indexer.stop()
        self.intake.close()
        self.store.close()


def create_app(settings: ServerSettings) -> FastAPI:
    """The app for resolved ``settings``; the index opens now, ingest starts with the server."""
    settings = settings.resolve()
    settings.log_folder()
    context = Context(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        context.start()
        try:
            yield
        finally:
            context.stop()

    app = FastAPI(
        title="waddle",
        version=f"API {API_VERSION}",
        description="Experiment tracker API; see docs/api.md.",
        default_response_class=wire.WireJSON,
        lifespan=lifespan,
    )
    app.state.waddle = context
    errors.install(app)
    # The dashboard last: its deep-link route answers any path the others do not.
    for module in (
        projects,
        runs,
        scalars,
        history,
        records,
        artifacts,
        files,
        live,
        ingest,
        dashboard,
    ):
        app.include_router(module.router)
    app.add_middleware(Access, tokens=context.tokens)
    return app

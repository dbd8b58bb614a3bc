"""The ``waddle`` command: ``waddle ls``, ``waddle demo``, ``waddle import`` (and the server's
commands when installed).

Errors are one line on stderr and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import math
import sys
import threading
import time
from pathlib import Path
from typing import Any

from waddle import __version__
from waddle.catalog import list_runs
from waddle.run_folder import inspect_run
from waddle.settings import resolve_one
from waddle.tally import Tally

# How many metrics `waddle ls` shows per run, in key order.
LS_METRICS = 3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="waddle", description="Local-first experiment tracker.")
    parser.add_argument("--version", action="version", version=f"waddle {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    ls = commands.add_parser(
        "ls", help="list projects and runs from the log files (no server needed)"
    )
    ls.add_argument("dir", nargs="?", help="log folder (default: $WADDLE_DIR or ./logs)")
    ls.add_argument("--project", help="only this project")
    ls.set_defaults(handler=_ls)

    demo = commands.add_parser("demo", help="run a small simulated training job that logs to DIR")
    demo.add_argument("dir", nargs="?", help="log folder (default: $WADDLE_DIR or ./logs)")
    demo.add_argument("--steps", type=int, default=300, help="training steps (default 300)")
    demo.add_argument("--project", default="demo", help="project name (default demo)")
    demo.add_argument(
        "--serve",
        action="store_true",
        help="log every data type, keep a second run training live, and serve the dashboard",
    )
    demo.add_argument(
        "--live", type=float, default=180, help="seconds the live run trains (default 180)"
    )
    demo.add_argument("--port", type=int, help="with --serve: port (default: $WADDLE_PORT or 8080)")
    demo.set_defaults(handler=_demo)

    serve = commands.add_parser(
        "serve",
        help="serve the dashboard API for a log folder (needs waddle[server])",
        description="Index DIR into DuckDB and serve the HTTP/WebSocket API. Binds 127.0.0.1 "
        "(only this machine can connect) unless --host says otherwise; any other address "
        "needs a token.",
    )
    serve.add_argument("dir", nargs="?", help="log folder (default: $WADDLE_DIR or ./logs)")
    serve.add_argument("--host", help="address to bind (default: $WADDLE_HOST or 127.0.0.1)")
    serve.add_argument("--port", help="port (default: $WADDLE_PORT or 8080; 0 = any)")
    serve.add_argument("--db", help="index file (default: $WADDLE_DB or DIR/.waddle/index.duckdb)")
    _token_options(serve, "a token this server accepts, full: read and ingest (repeatable; ")
    serve.add_argument(
        "--read-token",
        action="append",
        help="a read-only token: the API, files and live updates (repeatable; $WADDLE_READ_TOKEN)",
    )
    serve.add_argument(
        "--relay-to",
        metavar="URL",
        help="also relay this folder's runs to the central server at URL, sending the first "
        "full token",
    )
    serve.add_argument("--origin", help=ORIGIN_HELP)
    serve.set_defaults(handler=_serve)

    relay = commands.add_parser(
        "relay",
        help="forward a log folder's runs to a central server, for good",
        description="Forward every run of DIR (a log folder, a project or a run) to the central "
        "server, live, exactly once, through outages and restarts; no UI, no server packages. "
        "Says its state when it changes, and every 30 s while behind.",
    )
    relay.add_argument("dir", nargs="?", help="folder to relay (default: $WADDLE_DIR or ./logs)")
    _relay_options(relay)
    relay.set_defaults(handler=_relay)

    sync = commands.add_parser(
        "sync",
        help="send a folder's runs to a central server, then exit",
        description="Send what DIR (a log folder, a project or a run) holds to the central server "
        "and exit once all of it is acknowledged, saying what was sent.",
    )
    sync.add_argument("dir", help="log folder, project folder or run folder")
    _relay_options(sync)
    sync.set_defaults(handler=_relay)

    export = commands.add_parser(
        "export",
        help="write the index of a log folder as Hive-partitioned Parquet (needs waddle[server])",
        description="Write the runs of DIR as Parquet tables partitioned by project and run "
        "(TO/<table>/project=P/run=ID/), for DuckDB, Spark or Trino; only what changed since "
        "the last export to TO is written.",
    )
    export.add_argument("dir", nargs="?", help="log folder (default: $WADDLE_DIR or ./logs)")
    export.add_argument("--to", required=True, help="a folder, or a URI such as s3://bucket/prefix")
    export.add_argument("--project", help="only this project")
    export.set_defaults(handler=_export)

    reindex = commands.add_parser(
        "reindex", help="rebuild the server's index from the log files (needs waddle[server])"
    )
    reindex.add_argument("dir", nargs="?", help="log folder (default: $WADDLE_DIR or ./logs)")
    reindex.add_argument("--db", help="index file (default: DIR/.waddle/index.duckdb)")
    reindex.set_defaults(handler=_reindex)

    importing = commands.add_parser("import", help="import runs of another tracker's files")
    sources = importing.add_subparsers(dest="source", required=True)
    wandb = sources.add_parser(
        "wandb",
        help="import W&B offline runs (needs waddle[wandb])",
        description="Import W&B offline runs (config, history, summary, media, files, console) "
        "from their run folders (wandb/offline-run-*), or from a folder of them. Running it "
        "again imports only what changed.",
    )
    wandb.add_argument("runs", nargs="+", help="W&B run folders, run files or wandb/ folders")
    wandb.add_argument("--project", help="project (default: each run's W&B project)")
    wandb.add_argument("--dir", help="waddle's log folder (default: $WADDLE_DIR or ./logs)")
    wandb.set_defaults(handler=_import_wandb)
    tensorboard = sources.add_parser(
        "tensorboard",
        help="import a TensorBoard log folder (every folder with event files is a run)",
        description="Import the event files under LOGDIR, no TensorFlow needed. Running it "
        "again imports only what changed.",
    )
    tensorboard.add_argument("logdir", help="TensorBoard's log folder (what --logdir names)")
    tensorboard.add_argument("--project", help="project (default: $WADDLE_PROJECT or default)")
    tensorboard.add_argument("--dir", help="waddle's log folder (default: $WADDLE_DIR or ./logs)")
    tensorboard.set_defaults(handler=_import_tensorboard)

    args = parser.parse_args(argv)
    try:
        return args.handler(args) or 0
    except KeyboardInterrupt:
        return 130
    except (OSError, ValueError, TypeError, RuntimeError) as error:
        print(f"waddle {args.command}: {error}", file=sys.stderr)
        return 1


def _rank_paths(record) -> list[Path]:
    """The stream folders of a run's ranks other than 0."""
    return [stream.path for _, stream in sorted(record.ranks.items())]


def _ls(args: argparse.Namespace) -> int:
    log_dir = Path(resolve_one("dir", args.dir))
    if not log_dir.is_dir():
        raise ValueError(f"no log folder at {log_dir}")
    records = list_runs(log_dir, resolve_one("heartbeat_timeout"), project=args.project)
    if not records and args.project is not None:
        projects = sorted({record.project for record in list_runs(log_dir, math.inf)})
        there = f"; its projects: {', '.join(projects)}" if projects else ""
        raise ValueError(f"no project {args.project!r} in {log_dir}{there}")
    if not records:
        print(f"no runs in {log_dir}")
        return 0
    tally = Tally(log_dir)
    streams = [path for record in records for path in (record.path, *_rank_paths(record))]
    counts = tally.count(streams, everything=args.project is None)
    tally.save()
    header = "PROJECT RUN NAME STATUS STEPS REJECTED GAPS RANKS METRICS STARTED DURATION"
    rows = [header.split()]
    for record in records:
        count = counts[record.path]
        # A run of several ranks: one line, its rejects and gaps those of all its streams.
        rejected = sum(counts[path].rejected for path in (record.path, *_rank_paths(record)))
        gaps = sum(counts[path].gaps for path in (record.path, *_rank_paths(record)))
        # How far the run got: the highest step of any log event, keyed (docs/format.md) or
        # not, with the values logged there.
        last_step, last_values = record.last_step, record.last_values
        if count.keyed_step is not None and (last_step is None or count.keyed_step >= last_step):
            if last_step != count.keyed_step:
                last_values = {}
            last_step, last_values = count.keyed_step, {**last_values, **count.keyed_values}
        steps = "-" if last_step is None else str(last_step + 1)
        metrics = "  ".join(
            f"{key}={_format_value(value)}"
            for key, value in sorted(last_values.items())[:LS_METRICS]
        )
        started = (
            time.strftime("%Y-%m-%d %H:%M", time.localtime(record.started))
            if record.started
            else "-"
        )
        end = record.last_activity if record.status != "running" else time.time()
        duration = _format_duration(end - record.started) if record.started and end else "-"
        rows.append(
            [
                record.project,
                record.run_id,
                record.name or "-",
                record.status,
                steps,
                str(rejected),
                str(gaps),
                str(1 + len(record.ranks)),
                metrics or "-",
                started,
                duration,
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
            + "  "
            + row[-1]
        )
    return 0


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        return f"{value:.4g}"
    if isinstance(value, dict):
        return f"<{value.get('_type', 'object')}>"
    text = str(value)
    return text if len(text) <= 20 else text[:17] + "..."


def _format_duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{seconds:02d}s" if hours else f"{minutes}m{seconds:02d}s"


def _demo(args: argparse.Namespace) -> int:
    from waddle.demo import train, train_live

    serve = _server_module() if args.serve else None
    run = train(dir=args.dir, project=args.project, steps=args.steps, rich=args.serve)
    log_dir = Path(run.dir).parent.parent
    # Report what reached the disk, not what was logged: a run whose folder was unwritable
    # or full still "logged" every step, and kept them in memory until it gave up.
    record = inspect_run(Path(run.dir), math.inf)
    finish = record.finish if record is not None else None
    if finish is None or finish.get("lost_events"):
        lost = "every event" if finish is None else f"{finish['lost_events']} events"
        raise RuntimeError(
            f"{lost} of the demo run could not be written to {run.dir} (see above); "
            "check that the folder is writable and its disk has room"
        )
    print(f"logged {args.steps} steps to {run.dir}")
    if serve is None:
        print(f"list the runs with: waddle ls {log_dir}")
        return 0
    from waddle.server.settings import ServerSettings

    live = threading.Thread(
        target=train_live,
        kwargs={"dir": str(log_dir), "project": args.project, "seconds": args.live},
        daemon=True,
    )
    live.start()
    print(f"a second run trains live for {args.live:g} s; stop with Ctrl-C")
    serve.serve(ServerSettings(dir=str(log_dir), port=args.port))
    return 0


def _import_wandb(args: argparse.Namespace) -> int:
    try:
        from waddle.wandb_import import import_runs, say
    except ImportError:
        raise RuntimeError(
            "W&B's files are read with the wandb package, which is not installed: "
            "pip install -e '.[wandb]' in a clone of waddle"
        ) from None
    log_dir = Path(resolve_one("dir", args.dir))
    outcomes = import_runs(
        [Path(run) for run in args.runs],
        log_dir,
        args.project,
        say,
        segment_bytes=resolve_one("segment_bytes"),
    )
    _say_imported(outcomes, log_dir)
    return 0


def _say_imported(outcomes: list[Any], log_dir: Path) -> None:
    """One line per imported run (source, run, what was done), then where to see them."""
    for outcome in outcomes:
        what = (
            "unchanged, skipped"
            if outcome.status == "unchanged"
            else f"{outcome.status}: {outcome.values} values in {outcome.events} events"
        )
        print(f"{outcome.source} -> {outcome.project}/{outcome.run_id}: {what}")
    print(f"list them with: waddle ls {log_dir}")


def _import_tensorboard(args: argparse.Namespace) -> int:
    from waddle.settings import run_argument
    from waddle.tensorboard_import import import_logdir, say

    log_dir = Path(resolve_one("dir", args.dir))
    project = run_argument("project", args.project)
    outcomes = import_logdir(
        Path(args.logdir), log_dir, project, say, segment_bytes=resolve_one("segment_bytes")
    )
    if not outcomes:
        raise ValueError(f"no TensorBoard event files under {args.logdir}")
    _say_imported(outcomes, log_dir)
    return 0


ORIGIN_HELP = (
    "this machine's name on the central server (default: $WADDLE_ORIGIN, or the host name's "
    "first label)"
)


def _token_options(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--token", action="append", help=f"{what}default: $WADDLE_TOKEN); never echoed"
    )
    parser.add_argument(
        "--token-file",
        help="read tokens from this file, one a line ('read TOKEN': read-only), so they stay "
        "out of ps (default: $WADDLE_TOKEN_FILE)",
    )


def _relay_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--to",
        metavar="URL",
        help="the central server, http(s)://host:port (default: $WADDLE_SERVER)",
    )
    _token_options(parser, "the token to send (")
    parser.add_argument("--origin", help=ORIGIN_HELP)


def _relay(args: argparse.Namespace) -> int:
    """`waddle relay` (forward for good) and `waddle sync` (forward what there is, then exit)."""
    from waddle.server import forward

    relay = forward.open_relay(
        args.dir,
        args.command,
        to=args.to,
        token=args.token,
        token_file=args.token_file,
        origin=args.origin,
    )
    run = forward.relay_command if args.command == "relay" else forward.sync_command
    return run(relay)


def _server_module():
    try:
        from waddle.server import serve
    except ImportError as error:
        raise RuntimeError(
            f"the server needs extra packages ({error.name} is missing): "
            "pip install -e '.[server]' in a clone of waddle"
        ) from None
    return serve


def _serve(args: argparse.Namespace) -> int:
    serve = _server_module()
    from waddle.server.settings import ServerSettings

    settings = ServerSettings(
        dir=args.dir,
        host=args.host,
        port=args.port,
        db=args.db,
        token=args.token,
        read_token=args.read_token,
        token_file=args.token_file,
        relay_to=args.relay_to,
        origin=args.origin,
    )
    serve.serve(settings)
    return 0


def _export(args: argparse.Namespace) -> int:
    _server_module()  # the extra packages: pyarrow writes the Parquet files
    from waddle.server.export import export_command

    log_dir = Path(resolve_one("dir", args.dir))
    if not log_dir.is_dir():
        raise ValueError(f"no log folder at {log_dir}")
    print(f"waddle export: {export_command(log_dir, args.to, args.project)}")
    return 0


def _reindex(args: argparse.Namespace) -> int:
    serve = _server_module()
    from waddle.server.settings import ServerSettings

    started = time.monotonic()
    counts = serve.reindex(ServerSettings(dir=args.dir, db=args.db))
    print(
        f"reindexed {counts['runs']} runs: {counts['events']} events, {counts['scalars']} "
        f"scalar points, {counts['rejects']} rejected lines or values "
        f"in {time.monotonic() - started:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Load test: training processes log while query threads read, and every failed request by kind.

Issue 8 (item 13) saw 1.8 % of requests fail, with no server error logged, with 50 trainers
logging and 20 query threads for 60 s. This reproduces that shape against a real
``waddle serve`` and names each failure: a timeout, a refused connection, a connection
closed or reset, an HTTP 5xx, an unexpected 4xx.

    .venv/bin/python benchmarks/load.py                  # 50 trainers, 20 threads, 60 s
    .venv/bin/python benchmarks/load.py --quick          # 10 trainers, 8 threads, 20 s
    .venv/bin/python benchmarks/load.py --baseline OTHER/bin/python   # against another install

With ``--baseline``, a second ``waddle serve`` from that interpreter's waddle (an older
release, another checkout) serves the same folder at the same time on its own index, and the
query threads are split between the two: both meet the same load, on a machine whose load
moves too much between runs to compare separate runs.

It is bounded: the trainers stop logging after ``--seconds`` and each is killed if it has not
finished 60 s later; the query threads stop at the same time. It prints a markdown report and
writes it to ``benchmarks/results/load.md`` (``--results`` to write elsewhere). The machine is
shared and noisy: latencies move between runs; the error counts are what this measures.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import random
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import httpx

from server import Server, _commit, p50, p99

HERE = Path(__file__).resolve().parent
DATA = HERE / "_data" / "load"
RESULTS = HERE / "results" / "load.md"

# A trainer: 10 scalars and a text value per step at a fixed rate, then finish.
TRAINER = textwrap.dedent(
    """
    import math, random, sys, time, waddle
    folder, seconds, rate = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
    run = waddle.init(project="load", dir=folder,
                      settings=waddle.Settings(console=False, system_metrics_interval=0))
    start, step = time.monotonic(), 0
    while time.monotonic() - start < seconds:
        values = {f"train/k{i}": random.random() for i in range(10)}
        values["train/k0"] = math.nan if step % 97 == 5 else values["train/k0"]
        run.log(values | {"note": f"step {step}"})
        step += 1
        if rate:
            time.sleep(max(0.0, start + step / rate - time.monotonic()))
    run.finish(quiet=True)
    """
)


def classify(error: Exception | None, response: httpx.Response | None) -> str:
    """What kind of failure a request met, or "ok"."""
    if error is None:
        status = response.status_code
        if status < 400:
            return "ok"
        return "5xx" if status >= 500 else f"{status} {response.json()['error']['code']}"
    if isinstance(error, httpx.TimeoutException):
        return f"timeout ({type(error).__name__})"
    if isinstance(error, httpx.ConnectError):
        return "refused (ConnectError)"
    if isinstance(error, (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)):
        return f"closed or reset ({type(error).__name__}: {str(error)[:60]})"
    return f"other ({type(error).__name__}: {str(error)[:60]})"


class Reader(threading.Thread):
    """One query thread: a dashboard's reads, picked at random, on one keep-alive client."""

    def __init__(self, url: str, until: float, seed: int, args: argparse.Namespace) -> None:
        super().__init__(daemon=True)
        self.url, self.until, self.random = url, until, random.Random(seed)
        self.timeout, self.think = args.timeout, args.think
        # A connection per request, as a script using urllib or requests without a session.
        self.limits = httpx.Limits(max_keepalive_connections=0 if args.fresh else None)
        self.results: list[tuple[str, str, float]] = []  # (endpoint, outcome, ms)

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=self.timeout, limits=self.limits) as client:
            runs: list[str] = []
            while time.monotonic() < self.until:
                name, method, path, body = self._pick(runs)
                start = time.perf_counter()
                error = response = None
                try:
                    response = client.request(method, path, json=body)
                except httpx.HTTPError as caught:
                    error = caught
                ms = (time.perf_counter() - start) * 1000
                self.results.append((name, classify(error, response), ms))
                if name == "runs" and error is None and response.status_code == 200:
                    runs = [run["id"] for run in response.json()["runs"]]
                time.sleep(self.random.uniform(0, self.think))

    def _pick(self, runs: list[str]) -> tuple[str, str, str, dict | None]:
        if not runs:
            return "runs", "GET", "/api/projects/load/runs?limit=100", None
        run = self.random.choice(runs)
        key = f"train/k{self.random.randrange(10)}"
        base = f"/api/projects/load/runs/{run}"
        choices = [
            ("runs", "GET", "/api/projects/load/runs?limit=100&sort=-summary.train/k1", None),
            ("projects", "GET", "/api/projects", None),
            ("run", "GET", base, None),
            ("metrics", "GET", f"{base}/metrics", None),
            ("scalars m4", "GET", f"{base}/scalars?key={key}&points=1000", None),
            ("scalars whole", "GET", f"{base}/scalars?key={key}", None),
            ("text", "GET", f"{base}/text?limit=100", None),
            (
                "batch m4",
                "POST",
                "/api/projects/load/scalars",
                {
                    "series": [{"run": self.random.choice(runs), "key": key} for _ in range(10)],
                    "points": 500,
                },
            ),
        ]
        return self.random.choice(choices)


class Served:
    """One ``waddle serve`` of the folder, its query threads, and what its stderr said."""

    def __init__(self, name: str, python: str, db: Path) -> None:
        self.name = name
        self.server = Server(DATA, stderr=subprocess.PIPE, python=python, db=db)
        self.logged: list[str] = []
        self._drain = threading.Thread(
            target=lambda: self.logged.extend(self.server.process.stderr), daemon=True
        )
        self._drain.start()
        self.readers: list[Reader] = []
        self.ingest: dict = {}

    def wait_for_project(self, until: float) -> None:
        """The dashboards open once the project has a run."""
        http = self.server.http
        while http.get("/api/projects/load/runs").status_code != 200 and time.monotonic() < until:
            time.sleep(0.05)

    def close(self) -> None:
        self.ingest = self.server.ingest()
        self.server.close()
        self._drain.join(timeout=10)

    @property
    def results(self) -> list[tuple[str, str, float]]:
        return [result for reader in self.readers for result in reader.results]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 trainers, 8 threads, 20 s")
    parser.add_argument("--trainers", type=int, default=50)
    parser.add_argument("--queries", type=int, default=20, help="query threads")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument(
        "--rate", type=float, default=100.0, help="steps/s of each trainer, 0: as fast as it can"
    )
    parser.add_argument(
        "--timeout", type=float, default=5.0, help="seconds before a request counts as failed"
    )
    parser.add_argument(
        "--think", type=float, default=0.0, help="a thread waits up to this long between reads"
    )
    parser.add_argument("--fresh", action="store_true", help="a new connection per request")
    parser.add_argument(
        "--baseline",
        metavar="PYTHON",
        help="also serve the folder with the waddle of this interpreter (another install), "
        "on its own index; the query threads are split between the two servers",
    )
    parser.add_argument("--results", default=str(RESULTS), help="markdown file to write")
    args = parser.parse_args()
    if args.quick:
        args.trainers, args.queries, args.seconds = 10, 8, 20.0
    shutil.rmtree(DATA, ignore_errors=True)
    DATA.mkdir(parents=True)
    load = os.getloadavg()
    pythons = {"this checkout": sys.executable} | (
        {"baseline": args.baseline} if args.baseline else {}
    )
    served = [
        Served(name, python, DATA.parent / f"load-{index}.duckdb")
        for index, (name, python) in enumerate(pythons.items())
    ]
    trainers = [
        subprocess.Popen(
            [sys.executable, "-c", TRAINER, str(DATA), str(args.seconds), str(args.rate)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(args.trainers)
    ]
    started = time.monotonic()
    until = started + args.seconds
    for one in served:
        one.wait_for_project(until)
    for seed in range(args.queries):
        one = served[seed % len(served)]
        one.readers.append(Reader(one.server.url, until, seed, args))
    for one in served:
        for reader in one.readers:
            reader.start()
    for one in served:
        for reader in one.readers:
            reader.join(timeout=args.seconds + 2 * args.timeout + 30)
    failed_trainers = 0
    for trainer in trainers:
        try:
            failed_trainers += trainer.wait(timeout=max(1.0, until + 60 - time.monotonic())) != 0
        except subprocess.TimeoutExpired:
            trainer.kill()
            failed_trainers += 1
    for one in served:
        one.close()
    shutil.rmtree(DATA, ignore_errors=True)
    for path in DATA.parent.glob("load-*.duckdb*"):
        path.unlink()
    report = render(args, served, failed_trainers, load, started)
    print(report)
    Path(args.results).parent.mkdir(parents=True, exist_ok=True)
    Path(args.results).write_text(report)


def render(args, served: list[Served], failed_trainers: int, load, started: float) -> str:
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    out = [
        "# Load test: trainers logging while dashboards read",
        "",
        f"- date: {now}; {time.monotonic() - started:.0f} s",
        f"- machine: {platform.machine()}, {os.cpu_count()} cores, load average "
        f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the start; Python {platform.python_version()}",
        f"- commit: {_commit()}",
        f"- {args.trainers} training processes, each logging 10 scalars and a text value at "
        f"{args.rate:g} steps/s for {args.seconds:g} s; {args.queries} query threads"
        f"{' split between the servers' if len(served) > 1 else ''}, each on "
        f"{'a new connection per request' if args.fresh else 'one keep-alive connection'}, "
        f"{args.timeout:g} s timeout",
    ]
    if len(served) > 1:
        out.append(
            f"- baseline: {args.baseline}, serving the same folder at the same time on its own"
            " index, so both servers meet the same load"
        )
    names = [one.name for one in served]
    head = "| " + " | ".join(names) + " |"
    outcomes = sorted(
        {outcome for one in served for _, outcome, _ in one.results},
        key=lambda outcome: (outcome != "ok", outcome),
    )
    out += ["", "## Requests", "", "| outcome " + head, "|---" + "|---:" * len(served) + "|"]
    for outcome in outcomes:
        cells = []
        for one in served:
            count = sum(1 for _, got, _ in one.results if got == outcome)
            cells.append(f"{count:,} ({count / (len(one.results) or 1):.2%})")
        out.append(f"| {outcome} | " + " | ".join(cells) + " |")
    cells = []
    for one in served:
        failed = sum(1 for _, got, _ in one.results if got != "ok")
        cells.append(f"**{failed:,} ({failed / (len(one.results) or 1):.2%})**")
    out.append("| **failed** | " + " | ".join(cells) + " |")
    out += [
        "",
        "p50 / p99 ms, and failed requests, per endpoint:",
        "",
        "| endpoint " + head,
        "|---" + "|---:" * len(served) + "|",
    ]
    endpoints = sorted({name for one in served for name, _, _ in one.results})
    for endpoint in endpoints:
        cells = []
        for one in served:
            times = [ms for name, _, ms in one.results if name == endpoint]
            failed = sum(1 for name, got, _ in one.results if name == endpoint and got != "ok")
            cells.append(
                f"{p50(times):,.0f} / {p99(times):,.0f} ({failed} failed)" if times else "–"
            )
        out.append(f"| {endpoint} | " + " | ".join(cells) + " |")
    out += ["", "## Servers and trainers", ""]
    for one in served:
        ingest = one.ingest
        logged = [line.rstrip() for line in one.logged if line.strip()]
        out.append(
            f"- {one.name}: points indexed {ingest['points']:,}"
            f" ({ingest['points'] / args.seconds:,.0f}/s), runs {ingest['runs']}, caught up at the"
            f" end: {ingest['caught_up']}; lines written to stderr: {len(logged)}"
        )
        out += [f"  - `{line[:200]}`" for line in logged[:10]]
    out.append(f"- trainers that failed or were killed: {failed_trainers}")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    main()

"""Relay benchmark: forwarding runs to a central server, against the targets and the peers.

Run it with the peers' venv (it holds waddle too): ``.venv-peers/bin/python benchmarks/relay.py``
(``--quick`` for small sizes). It prints markdown and writes ``benchmarks/results/relay.md``.
Every process runs on this machine on loopback; the machine is shared and noisy, so besides
rates it reports CPU seconds per million values, which do not depend on what else runs.

What is measured:

- throughput: ``waddle sync`` of a folder of finished runs to a central ``waddle serve``:
  values acknowledged per second, the CPU each side spent, the relay's peak memory, and when
  the central index held them all;
- log() → WebSocket: a training process logs its CLOCK_MONOTONIC stamp 50 times a second;
  ``waddle relay`` forwards it; a WebSocket client subscribed to the series on the central
  server subtracts the stamp on arrival;
- catch-up after an outage: 100 runs that logged at a steady rate for 10 minutes while the
  central server was down (the backlog written as the runs would have), a ``waddle relay``
  retrying all along; then the central server comes back: time until all is acknowledged and
  indexed, and the relay's peak memory;
- scale: many ``waddle relay`` processes (origins) with many runs each, all at once, into one
  central server; then the query targets of the server benchmark on that index;
- peers on the same workload (10 scalars a step delivered to a tracking server over HTTP on
  loopback): MLflow's client against ``mlflow server``, Aim's ``Run`` against ``aim server``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import gc
import json
import os
import platform
import random
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import orjson
import psutil

HERE = Path(__file__).resolve().parent
DATA = HERE / "_data" / "relay"
RESULTS = HERE / "results" / "relay.md"
TOKEN = "relay-benchmark-token"
KEYS = [f"train/k{i}" for i in range(10)]
T0 = 1.79e9

# Targets from GitHub issue 11.
TARGETS = {"throughput": 500_000, "ws_p99": 2000.0, "memory_mb": 100.0}


# --- logs written directly, as valid event lines (docs/format.md) ---


def write_run(folder: Path, project: str, run_id: str, steps: int, rate: float, seed: int) -> int:
    """A run of ``steps`` log events of 10 random floats, ``rate`` steps a second; its values."""
    run_dir = folder / project / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    rnd = random.Random(seed).random
    dumps = orjson.dumps
    start = {"v": 1, "seq": 0, "t": T0, "type": "run_start", "project": project}
    start |= {"run_id": run_id, "name": run_id, "config": {"seed": seed}, "tags": ["bench"]}
    with open(run_dir / "events-000000000000.jsonl", "wb") as file:
        file.write(dumps(start) + b"\n")
        for begin in range(0, steps, 10_000):
            lines = [
                dumps(
                    {
                        "v": 1,
                        "seq": step + 1,
                        "t": T0 + step / rate,
                        "type": "log",
                        "step": step,
                        "data": {key: rnd() for key in KEYS},
                    }
                )
                for step in range(begin, min(steps, begin + 10_000))
            ]
            file.write(b"\n".join(lines) + b"\n")
    return steps * len(KEYS)


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*.jsonl"))


# --- processes ---


class Watched:
    """A child process whose peak RSS and CPU time are sampled while it runs."""

    def __init__(self, command: list[str], log: Path, **env: str) -> None:
        self.log = open(log, "ab")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            command, stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, **env}
        )
        self.peak_rss = 0
        self.cpu = 0.0
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _sample(self) -> None:
        try:
            info = psutil.Process(self.process.pid)
            while not self._stop.is_set() and self.process.poll() is None:
                with info.oneshot():
                    self.peak_rss = max(self.peak_rss, info.memory_info().rss)
                    times = info.cpu_times()
                    self.cpu = times.user + times.system
                time.sleep(0.05)
        except psutil.Error:
            pass

    def wait(self, timeout: float | None = None) -> int:
        code = self.process.wait(timeout=timeout)
        self._stop.set()
        self._sampler.join()
        return code

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self._stop.set()
        self._sampler.join()
        self.log.close()


def waddle_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "waddle.cli", *args]


class Central(Watched):
    """``waddle serve FOLDER`` with a token, on a free port."""

    def __init__(self, folder: Path, port: int | None = None) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        tokens = folder.parent / f"{folder.name}.tokens"
        tokens.write_text(TOKEN + "\n")
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = waddle_command(
            "serve", str(folder), "--port", str(self.port), "--token-file", str(tokens)
        )
        super().__init__(command, folder.parent / f"{folder.name}.log")
        self.http = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120
        )
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if self.http.get("/api/health").status_code == 200:
                    break
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"waddle serve did not start: {self.log.name}")
            time.sleep(0.05)

    def health(self) -> dict:
        return self.http.get("/api/health").json()

    def wait_intake(self, events: int, timeout: float = 1800) -> float:
        """Until relays delivered ``events``; the monotonic time it happened."""
        return self._wait(lambda h: h["intake"]["events"] >= events, timeout)

    def wait_indexed(self, points: int, timeout: float = 1800) -> float:
        return self._wait(
            lambda h: h["ingest"]["points"] >= points and h["ingest"]["caught_up"], timeout
        )

    def _wait(self, done, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if done(self.health()):
                return time.monotonic()
            time.sleep(0.05)
        raise TimeoutError(f"not reached in {timeout} s: {self.health()}")

    def stop(self) -> None:
        self.http.close()
        super().stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def fresh(name: str) -> Path:
    folder = DATA / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def relay(folder: Path, central: Central, origin: str, log: Path, command: str = "relay"):
    args = [command, str(folder), "--to", central.url, "--origin", origin]
    return Watched(waddle_command(*args), log, WADDLE_TOKEN=TOKEN)


# --- the measurements ---


def measure_throughput(runs: int, steps: int) -> dict:
    base = fresh("throughput")
    local = base / "local"
    values = sum(write_run(local, "p", f"run{i}", steps, 100.0, i) for i in range(runs))
    central = Central(base / "central")
    try:
        start = time.monotonic()
        sync = relay(local, central, "bench", base / "sync.log", command="sync")
        if sync.wait(timeout=3600) != 0:
            raise RuntimeError((base / "sync.log").read_text()[-500:])
        acked = time.monotonic()
        indexed = central.wait_indexed(values)
        central_cpu = central.cpu
        return {
            "runs": runs,
            "values": values,
            "bytes": folder_bytes(local),
            "acked_s": acked - start,
            "indexed_s": indexed - start,
            "relay_cpu": sync.cpu,
            "central_cpu": central_cpu,
            "relay_rss": sync.peak_rss,
            "central_rss": central.peak_rss,
        }
    finally:
        central.stop()
        shutil.rmtree(base, ignore_errors=True)


def child_writer(folder: str, steps: str, rate: str) -> dict:
    """Log CLOCK_MONOTONIC stamps through waddle's client at ``rate`` a second."""
    import waddle

    settings = {"console": False, "system_metrics_interval": 0}
    run = waddle.init(project="latency", dir=folder, settings=settings)
    print(json.dumps({"run": run.id}), flush=True)
    start, rate_f = time.monotonic(), float(rate)
    for step in range(int(steps)):
        run.log({"lat": time.clock_gettime(time.CLOCK_MONOTONIC)})
        time.sleep(max(0.0, start + (step + 1) / rate_f - time.monotonic()))
    run.finish()
    return {}


def measure_ws(seconds: float, rate: float) -> dict:
    from websockets.sync.client import connect

    base = fresh("latency")
    local = base / "local"
    local.mkdir()
    central = Central(base / "central")
    forwarder = relay(local, central, "bench", base / "relay.log")
    try:
        steps = int(seconds * rate)
        command = [sys.executable, __file__, "--child", "writer", str(local), str(steps), str(rate)]
        writer = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        run_id = "bench." + json.loads(writer.stdout.readline())["run"]
        deadline = time.monotonic() + 60
        while central.http.get(f"/api/projects/latency/runs/{run_id}").status_code != 200:
            if time.monotonic() > deadline:
                raise TimeoutError("the run never reached the central index")
            time.sleep(0.02)
        latencies = []
        url = central.url.replace("http://", "ws://") + f"/ws?token={TOKEN}"
        with connect(url) as ws:
            subscribe = {"op": "subscribe", "id": "lat", "project": "latency", "run": run_id}
            ws.send(json.dumps(subscribe | {"key": "lat"}))
            subscribed = time.clock_gettime(time.CLOCK_MONOTONIC)
            last = 0
            while last < steps - 1:
                try:
                    message = json.loads(ws.recv(timeout=10))
                except TimeoutError:
                    if writer.poll() is not None:
                        break
                    continue
                if message.get("type") != "points":
                    continue
                now = time.clock_gettime(time.CLOCK_MONOTONIC)
                latencies += [now - v for v in message["value"] if v > subscribed]
                last = max(message["step"], default=last)
        writer.wait(timeout=60)
        if not latencies:
            raise RuntimeError("no point reached the WebSocket subscriber")
        ms = np.array(latencies) * 1000
        return {
            "n": len(ms),
            "p50": float(np.percentile(ms, 50)),
            "p99": float(np.percentile(ms, 99)),
        }
    finally:
        forwarder.stop()
        central.stop()
        shutil.rmtree(base, ignore_errors=True)


def measure_outage(runs: int, minutes: float, steps_per_s: float) -> dict:
    """A backlog as ``runs`` runs logging 10 values ``steps_per_s`` times a second for
    ``minutes`` would leave; a relay retrying while the central server is down; then it is up."""
    base = fresh("outage")
    local = base / "local"
    steps = int(minutes * 60 * steps_per_s)
    port = free_port()
    central_folder = base / "central"
    forwarder = None
    central = None
    try:
        # The relay first, against a server that is not there: it backs off as it would.
        local.mkdir()
        forwarder = Watched(
            waddle_command(
                "relay", str(local), "--to", f"http://127.0.0.1:{port}", "--origin", "bench"
            ),
            base / "relay.log",
            WADDLE_TOKEN=TOKEN,
        )
        values = sum(write_run(local, "p", f"run{i}", steps, steps_per_s, i) for i in range(runs))
        time.sleep(2.0)  # the relay has found the runs, and failed to reach the server
        start = time.monotonic()
        central = Central(central_folder, port)
        up = time.monotonic()
        acked = central.wait_intake(values // len(KEYS) + runs)
        indexed = central.wait_indexed(values)
        return {
            "runs": runs,
            "minutes": minutes,
            "values": values,
            "rate": runs * steps_per_s * len(KEYS),
            "bytes": folder_bytes(local),
            "up_s": up - start,
            "acked_s": acked - start,
            "indexed_s": indexed - start,
            "relay_rss": forwarder.peak_rss,
            "relay_cpu": forwarder.cpu,
            "central_cpu": central.cpu,
        }
    finally:
        for process in (forwarder, central):
            if process is not None:
                process.stop()
        shutil.rmtree(base, ignore_errors=True)


def measure_scale(relays: int, runs: int, steps: int) -> dict:
    """``relays`` relay processes, each its own origin with ``runs`` runs, all at once."""
    base = fresh("scale")
    values = 0
    for index in range(relays):
        for run in range(runs):
            values += write_run(
                base / f"m{index}", "team", f"run{run}", steps, 10.0, index * runs + run
            )
    central = Central(base / "central")
    processes = []
    try:
        start = time.monotonic()
        for index in range(relays):
            processes.append(
                relay(base / f"m{index}", central, f"m{index}", base / f"m{index}.log")
            )
        acked = central.wait_intake(values // len(KEYS) + relays * runs, timeout=3600)
        indexed = central.wait_indexed(values, timeout=3600)
        relays_cpu = sum(process.cpu for process in processes)
        relay_rss = float(np.median([p.peak_rss for p in processes]))
        for process in processes:  # they run on other machines: not on the central's cores
            process.stop()
        http = central.http
        listing = _times(lambda: http.get("/api/projects/team/runs", params={"limit": 10_000}))
        series = {"key": KEYS[0], "points": 2000}
        m4 = _times(lambda: http.get("/api/projects/team/runs/m0.run0/scalars", params=series))
        return {
            "relays": relays,
            "runs": relays * runs,
            "values": values,
            "acked_s": acked - start,
            "indexed_s": indexed - start,
            "relay_rss": relay_rss,
            "relays_cpu": relays_cpu,
            "central_rss": central.peak_rss,
            "central_cpu": central.cpu,
            "list_ms": listing,
            "m4_ms": m4,
        }
    finally:
        for process in processes:
            process.stop()
        central.stop()
        shutil.rmtree(base, ignore_errors=True)


def _times(call, reps: int = 15) -> list[float]:
    call()
    out = []
    for _ in range(reps):
        start = time.perf_counter()
        response = call()
        response.raise_for_status()
        out.append((time.perf_counter() - start) * 1000)
    return out


# --- peers ---


def _started(process: subprocess.Popen, ready, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(Exception):
            if ready():
                return
        if time.monotonic() > deadline or process.poll() is not None:
            raise RuntimeError(f"{what} did not start")
        time.sleep(0.5)


def measure_mlflow(steps: int, budget: float) -> dict:
    """MLflow's client logging to `mlflow server` (SQLite) over HTTP: one log_batch per step
    (as a training loop calls it), and 100 steps (1,000 values, its batch limit) per call."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    folder = fresh("mlflow")
    port = free_port()
    command = [str(Path(sys.executable).with_name("mlflow")), "server", "--backend-store-uri"]
    command += [f"sqlite:///{folder / 'mlflow.db'}", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--workers", "1", "--default-artifact-root", str(folder / "artifacts")]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        _started(server, lambda: httpx.get(url + "/health").status_code == 200, "mlflow server")
        client = MlflowClient(url)
        out = {}
        for name, per_call in (("per_step", 1), ("batched", 100)):
            run_id = client.create_run("0").info.run_id
            rnd = random.random
            start, sent = time.perf_counter(), 0
            for first in range(0, steps, per_call):
                stamp = int(time.time() * 1000)
                metrics = [
                    Metric(key, rnd(), stamp, step)
                    for step in range(first, min(steps, first + per_call))
                    for key in KEYS
                ]
                client.log_batch(run_id, metrics=metrics)
                sent += len(metrics)
                if time.perf_counter() - start > budget:
                    break
            out[name] = sent / (time.perf_counter() - start)
        return out
    finally:
        server.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.wait(timeout=30)
        if server.poll() is None:
            server.kill()
        shutil.rmtree(folder, ignore_errors=True)


def measure_aim(steps: int, budget: float) -> dict:
    """Aim's Run tracking to `aim server` (its remote tracking server) over loopback."""
    import aim

    folder = fresh("aim")
    aim_bin = str(Path(sys.executable).with_name("aim"))
    subprocess.run([aim_bin, "init", "--repo", str(folder), "-y"], capture_output=True, check=True)
    port = free_port()
    server = subprocess.Popen(
        [aim_bin, "server", "--repo", str(folder), "--port", str(port), "-y"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its uvicorn child outlives it: stopped with its group
    )
    try:

        def ready() -> bool:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True

        _started(server, ready, "aim server")
        time.sleep(2.0)
        run = aim.Run(repo=f"aim://127.0.0.1:{port}", experiment="bench")
        rnd = random.random
        start, sent = time.perf_counter(), 0
        for step in range(steps):
            run.track({key: rnd() for key in KEYS}, step=step)
            sent += len(KEYS)
            if time.perf_counter() - start > budget:
                break
        run.close()
        rate = sent / (time.perf_counter() - start)
        # Aim lets go of the run's remote resources in finalizers: run them while its server is
        # up, or they retry a closed port when this process exits and it never does.
        del run
        gc.collect()
        return {"per_step": rate}
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, 15)
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, 9)
        shutil.rmtree(folder, ignore_errors=True)


# --- the report ---


def attempt(errors: dict, name: str, fn) -> dict | None:
    try:
        return fn()
    except Exception as error:  # a failing part is a row with its error, never a crash
        errors[name] = f"{type(error).__name__}: {error}"[:300]
        print(f"  {name} failed: {errors[name]}", file=sys.stderr)
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a few minutes")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--results", default=str(RESULTS), help="markdown file to write")
    parser.add_argument("--only", default="", help="comma list of parts (default: all)")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(CHILDREN[args.child[0]](*args.child[1:])), flush=True)
        return
    quick = args.quick
    sizes = {
        "runs": 4,
        "steps": 25_000 if quick else 250_000,
        "ws_seconds": 10.0 if quick else 30.0,
        "outage_runs": 100,
        "outage_minutes": 1.0 if quick else 10.0,
        "outage_rate": 10.0,
        "relays": 20 if quick else 100,
        "relay_runs": 5 if quick else 100,
        "relay_steps": 100,
        "peer_steps": 2_000 if quick else 20_000,
        "peer_budget": 10.0 if quick else 30.0,
    }
    parts = set(filter(None, args.only.split(","))) or {
        "throughput", "ws", "outage", "scale", "mlflow", "aim"
    }  # fmt: skip
    load = os.getloadavg()
    began = time.monotonic()
    res: dict = {}
    errors: dict = {}
    plan = {
        "throughput": lambda: measure_throughput(sizes["runs"], sizes["steps"]),
        "ws": lambda: measure_ws(sizes["ws_seconds"], 50.0),
        "outage": lambda: measure_outage(
            sizes["outage_runs"], sizes["outage_minutes"], sizes["outage_rate"]
        ),
        "scale": lambda: measure_scale(sizes["relays"], sizes["relay_runs"], sizes["relay_steps"]),
        "mlflow": lambda: measure_mlflow(sizes["peer_steps"], sizes["peer_budget"]),
        "aim": lambda: measure_aim(sizes["peer_steps"], sizes["peer_budget"]),
    }
    for name, fn in plan.items():
        if name in parts:
            print(f"measuring {name} ...", file=sys.stderr, flush=True)
            res[name] = attempt(errors, name, fn)
            print(f"  {name}: {res[name]}", file=sys.stderr, flush=True)
    report = render(res, errors, sizes, quick, load, time.monotonic() - began)
    print(report)
    Path(args.results).write_text(report)


def render(res: dict, errors: dict, sizes: dict, quick: bool, load: tuple, seconds: float) -> str:
    out = ["# Relay benchmark: forwarding to a central server", ""]
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    out.append(f"- date: {now}; {'--quick' if quick else 'full'} run, {seconds:.0f} s")
    out.append(
        f"- machine: {platform.machine()}, {os.cpu_count()} cores (shared with other work), "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the start; Python "
        + platform.python_version()
    )
    out.append(f"- commit: {_commit()}")
    out += ["", "## waddle against its targets", ""]
    out += ["| figure | waddle | target | met |", "|---|---:|---:|---|"]

    def row(figure: str, value: str, target: str = "", met: bool | None = None) -> None:
        verdict = "–" if met is None else ("yes" if met else "**no**")
        out.append(f"| {figure} | {value} | {target} | {verdict} |")

    def missing(figure: str, name: str) -> None:
        out.append(f"| {figure} | error: {errors.get(name, 'not run')} | | |")

    t = res.get("throughput")
    if t:
        rate = t["values"] / t["acked_s"]
        row(
            f"throughput through one relay: `waddle sync` of {t['runs']} runs, "
            f"{t['values'] / 1e6:.0f}M values ({t['bytes'] / 1e6:.0f} MB), acknowledged",
            f"{rate:,.0f} values/s",
            "≥ 500,000/s",
            rate >= TARGETS["throughput"],
        )
        row("… and in the central index", f"{t['values'] / t['indexed_s']:,.0f} values/s")
        row(
            "… CPU per million values: relay / central (intake and index)",
            f"{t['relay_cpu'] / t['values'] * 1e6:.2f} / {t['central_cpu'] / t['values'] * 1e6:.2f} s",
        )
        mb = t["relay_rss"] / 1e6
        row("… relay peak memory", f"{mb:.0f} MB", "≤ 100 MB", mb <= TARGETS["memory_mb"])
    else:
        missing("throughput", "throughput")
    w = res.get("ws")
    if w:
        row(
            f"log() → relay → central → WebSocket client, p50 / p99 ({w['n']} points at 50/s)",
            f"{w['p50']:,.0f} / {w['p99']:,.0f} ms",
            "p99 ≤ 2,000 ms",
            w["p99"] <= TARGETS["ws_p99"],
        )
    else:
        missing("log() → WebSocket", "ws")
    o = res.get("outage")
    if o:
        row(
            f"catch-up after a {o['minutes']:g}-minute outage: {o['runs']} runs at "
            f"{o['rate']:,.0f} values/s in all ({o['values'] / 1e6:.1f}M values, "
            f"{o['bytes'] / 1e6:.0f} MB), server up → all acknowledged",
            f"{o['acked_s']:.1f} s ({o['values'] / (o['acked_s'] - o['up_s']):,.0f} values/s)",
        )
        row("… → all indexed", f"{o['indexed_s']:.1f} s")
        mb = o["relay_rss"] / 1e6
        row(
            "… relay peak memory over the outage and catch-up",
            f"{mb:.0f} MB",
            "≤ 100 MB",
            mb <= TARGETS["memory_mb"],
        )
    else:
        missing("catch-up after an outage", "outage")
    s = res.get("scale")
    if s:
        row(
            f"{s['relays']} relays at once ({s['runs']:,} runs, {s['values'] / 1e6:.0f}M values) "
            "→ all acknowledged / indexed",
            f"{s['acked_s']:.1f} / {s['indexed_s']:.1f} s ({s['values'] / s['indexed_s']:,.0f} values/s)",
        )
        row(
            "… memory: one relay (median) / the central server",
            f"{s['relay_rss'] / 1e6:.0f} / {s['central_rss'] / 1e6:.0f} MB",
        )
        row(
            "… CPU per million values: the relays together / the central server",
            f"{s['relays_cpu'] / s['values'] * 1e6:.1f} / {s['central_cpu'] / s['values'] * 1e6:.1f} s",
        )
        row(
            f"… runs list of {s['runs']:,} runs, p50 (p99)",
            f"{np.percentile(s['list_ms'], 50):,.1f} ({np.percentile(s['list_ms'], 99):,.1f}) ms",
            "≤ 100 ms",
            float(np.percentile(s["list_ms"], 50)) <= 100,
        )
        row(
            "… one series → 2,000 M4 buckets, p50 (p99)",
            f"{np.percentile(s['m4_ms'], 50):,.1f} ({np.percentile(s['m4_ms'], 99):,.1f}) ms",
            "≤ 30 ms",
            float(np.percentile(s["m4_ms"], 50)) <= 30,
        )
    else:
        missing("many relays at once", "scale")
    out += ["", "## Peers: 10 scalars a step delivered to a tracking server over HTTP", ""]
    out += ["| tracker | how | values/s delivered | ÷ waddle's relay |", "|---|---|---:|---:|"]
    waddle_rate = t["values"] / t["acked_s"] if t else None

    def peer(name: str, how: str, rate: float | None, key: str) -> None:
        if rate is None:
            out.append(f"| {name} | {how} | error: {errors.get(key, 'not run')} | |")
            return
        ratio = f"{waddle_rate / rate:,.0f}× slower" if waddle_rate else "–"
        out.append(f"| {name} | {how} | {rate:,.0f} | {ratio} |")

    if waddle_rate:
        out.append(
            f"| waddle | the script logs locally; `waddle sync`/`relay` forwards | {waddle_rate:,.0f} | 1 |"
        )
    m = res.get("mlflow") or {}
    peer("mlflow", "`MlflowClient.log_batch`, one call per step", m.get("per_step"), "mlflow")
    peer("mlflow", "`log_batch` of 100 steps (1,000 values, its limit)", m.get("batched"), "mlflow")
    a = res.get("aim") or {}
    peer("aim", "`Run(repo='aim://…').track(dict)` per step", a.get("per_step"), "aim")
    out += ["", "## Past one machine: where the limit is", ""]
    out += extrapolate(res)
    out += ["", "## Notes", ""]
    notes = [
        "Each figure is one run of each measurement. All processes (central server, relays, "
        "training process, peers' servers) share this machine's cores with each other and "
        "with other work; the CPU seconds per million values do not depend on that.",
        f"Throughput: {sizes['runs']} finished runs of 10 random floats a step, written as "
        "event lines; `waddle sync` (one process) sends them to `waddle serve` with a token "
        "file; the rate is all values over the time from starting `waddle sync` until it "
        "exited, every batch acknowledged (fsynced on the central side).",
        "log() → WebSocket: `waddle relay` polls active runs every 100 ms; the central "
        "server indexes every 100 ms and pushes at most 5 times a second per subscription.",
        f"Outage: the backlog {sizes['outage_runs']} runs × 10 values × "
        f"{sizes['outage_rate']:g} steps/s would leave over the outage, written as event "
        "lines while `waddle relay` (started first) retried the absent server with backoff "
        "(at most 30 s); the time counts from starting the server, so it includes the wait "
        "for the relay's next try.",
        f"Scale: {sizes['relays']} `waddle relay` processes, each its own origin and log "
        f"folder with {sizes['relay_runs']} runs of {sizes['relay_steps']} steps, started "
        "together against one central server, on this machine's cores too (in a team they run "
        "on the training machines); the query figures are read once all is indexed and the "
        "relays have stopped, from a client on this machine.",
        "Peers: the same 10 random floats a step, sent by the client library in the same "
        "process as the loop (they have no local log to forward later), for at most "
        f"{sizes['peer_budget']:g} s each; mlflow "
        f"{_version('mlflow')} (`mlflow server`, SQLite, 1 worker), aim {_version('aim')} "
        "(`aim server`).",
    ]
    out += [f"- {note}" for note in notes]
    return "\n".join(out) + "\n"


def extrapolate(res: dict) -> list[str]:
    """What the measured costs say of a team's central server: 100 relays, 10,000 runs, 1 B
    points, on a machine with cores to itself."""
    t, s = res.get("throughput"), res.get("scale")
    if not (t and s):
        return ["(needs the throughput and scale measurements)"]
    big = t["central_cpu"] / t["values"]  # s of central CPU per value, large runs
    small = s["central_cpu"] / s["values"]  # the same for 10,000 small runs
    per_value_bytes = t["bytes"] / t["values"]
    relay = t["relay_cpu"] / t["values"]
    lines = [
        f"- The central server spends {big * 1e6:.2f} s of CPU per million values relayed in "
        f"large runs and {small * 1e6:.1f} s in 10,000 runs of 1,000 values (most of it per "
        "run: opening, fsyncs, the index's rows of a run). Its intake and its indexer share "
        "one Python process, so one core bounds it: about "
        f"{1 / big:,.0f} values/s sustained in large runs, {1 / small:,.0f} in small ones, "
        "whatever the number of relays; a relay spends "
        f"{relay * 1e6:.2f} s per million (about {1 / relay:,.0f} values/s a core, on its own "
        "machine).",
        f"- 100 relays: {s['relays']} relay processes with {s['runs']:,} runs were taken in "
        f"{s['acked_s']:.0f} s here, the relays themselves on this machine's 2 cores. A team of "
        f"100 machines logging 10 values at 10 steps/s per run, 10 runs each (100,000 values/s "
        f"in all) needs about {100_000 * big:.2f} of a central core; the limit of one central "
        f"server is about {1 / big:,.0f} values/s in all.",
        f"- 1 B points: the central log holds them in about {per_value_bytes * 1e9 / 1e9:.0f} GB "
        f"of event lines ({per_value_bytes:.0f} bytes a value) and the index in about 13 GB "
        "(benchmarks/results/server.md: 1.32 GB for 100M points); indexing them takes about "
        f"{big * 1e9 / 3600:.1f} h of one core as they arrive. Queries do not grow with the "
        "total: an M4 read touches one series, the runs list one project "
        f"(here {np.percentile(s['list_ms'], 50):.0f} ms for {s['runs']:,} runs).",
        "- Where it stops: one central process ingests what one core indexes. Past that "
        "(more values per second than above, or a history too large for one disk), `waddle "
        "export` writes each server's index as Hive-partitioned Parquet to shared storage, "
        "where DuckDB, Spark or Trino query all of it; the central servers can be split by "
        "team or project.",
    ]
    return lines


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    for name in (package, f"{package}-skinny"):
        with contextlib.suppress(PackageNotFoundError):
            return version(name)
    return "?"


def _commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE
        ).stdout.strip()
    except OSError:
        return "?"


CHILDREN = {"writer": child_writer}

if __name__ == "__main__":
    main()

"""What the writer thread records on its own: console output, system and GPU metrics, heartbeats,
and tensors materialised off the caller's thread."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

import pytest

import waddle
from tests.conftest import PYTHON, child_env, events_of, wait_until
from waddle.values import Deferred


def test_console_output_is_captured_and_still_shown(tmp_path, capfd):
    run = waddle.init(
        project="p", dir=tmp_path, settings=waddle.Settings(system_metrics_interval=0)
    )
    print("epoch 1 done")
    for percent in range(0, 101, 10):
        sys.stderr.write(f"\rprogress {percent}%")
    sys.stderr.write("\n")
    print("partial line without newline", end="")
    run.finish()
    out, err = capfd.readouterr()
    assert "epoch 1 done" in out and "progress 100%" in err  # the user sees everything
    events = [e for e in events_of(run.dir) if e["type"] == "console"]
    stdout = "".join(e["text"] for e in events if e["stream"] == "stdout")
    stderr = "".join(e["text"] for e in events if e["stream"] == "stderr")
    assert "epoch 1 done\n" in stdout
    assert "partial line without newline\n" in stdout  # flushed at finish
    assert stderr.count("progress") == 1 and "progress 100%\n" in stderr  # one line, not eleven
    assert sys.stdout is not None and type(sys.stdout).__name__ != "Tee"  # unwrapped after finish


def test_console_capture_can_be_turned_off(tmp_path):
    run = waddle.init(
        project="p",
        dir=tmp_path,
        settings=waddle.Settings(console=False, system_metrics_interval=0),
    )
    print("not captured")
    run.finish()
    assert not [e for e in events_of(run.dir) if e["type"] == "console"]


def test_system_metrics_are_sampled_without_a_gpu(tmp_path):
    run = waddle.init(
        project="p",
        dir=tmp_path,
        settings=waddle.Settings(console=False, system_metrics_interval=0.05),
    )
    wait_until(lambda: run.flush() and sum(e["type"] == "system" for e in events_of(run.dir)) >= 2)
    run.finish()
    samples = [e["data"] for e in events_of(run.dir) if e["type"] == "system"]
    for key in (
        "cpu/percent",
        "proc/rss",
        "memory/used",
        "memory/percent",
        "disk/read_bytes_per_s",
    ):
        assert key in samples[-1], key
    assert samples[-1]["proc/rss"] > 1e6
    assert not any(key.startswith("gpu/") for key in samples[-1])


FAKE_NVML = '''
"""A stand-in for the NVML bindings: this machine has no GPU."""
from types import SimpleNamespace
NVML_TEMPERATURE_GPU = 0
def nvmlInit(): pass
def nvmlDeviceGetCount(): return 2
def nvmlDeviceGetHandleByIndex(i): return i
def nvmlDeviceGetName(h): return b"Fake GPU %d" % h
def nvmlDeviceGetMemoryInfo(h): return SimpleNamespace(total=16e9, used=4e9 * (h + 1))
def nvmlDeviceGetUtilizationRates(h): return SimpleNamespace(gpu=50 + h)
def nvmlDeviceGetTemperature(h, kind): return 60 + h
def nvmlDeviceGetPowerUsage(h):
    if h == 1:
        raise RuntimeError("not supported")  # a GPU without a power sensor
    return 150000
'''


def test_gpu_metrics_come_from_nvml_when_a_gpu_answers(tmp_path):
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "pynvml.py").write_text(FAKE_NVML)
    code = textwrap.dedent(
        """
        import time, waddle
        run = waddle.init(project="p", settings=waddle.Settings(console=False, system_metrics_interval=0.05))
        time.sleep(0.3)
        run.finish()
        """
    )
    env = child_env(WADDLE_DIR=str(tmp_path / "logs"))
    env["PYTHONPATH"] = f"{fake}:{env['PYTHONPATH']}"
    subprocess.run([PYTHON, "-c", code], env=env, check=True, timeout=60, capture_output=True)
    run_dir = next((tmp_path / "logs" / "p").iterdir())
    events = events_of(run_dir)
    gpus = events[0]["context"]["gpus"]
    assert [g["name"] for g in gpus] == ["Fake GPU 0", "Fake GPU 1"]
    sample = [e["data"] for e in events if e["type"] == "system"][-1]
    assert sample["gpu/0/utilization"] == 50 and sample["gpu/1/utilization"] == 51
    assert sample["gpu/1/memory_percent"] == 50.0 and sample["gpu/0/temperature"] == 60
    assert sample["gpu/0/power"] == 150.0 and "gpu/1/power" not in sample


def test_heartbeats_are_written_while_the_run_is_idle(tmp_path):
    run = waddle.init(
        project="p",
        dir=tmp_path,
        settings=waddle.Settings(console=False, system_metrics_interval=0, heartbeat_interval=0.05),
    )
    wait_until(
        lambda: run.flush() and sum(e["type"] == "heartbeat" for e in events_of(run.dir)) >= 3
    )
    run.finish()


def test_torch_scalars_are_read_in_the_writer_thread_not_the_callers(tmp_path):
    torch = pytest.importorskip("torch")
    run = waddle.init(
        project="p",
        dir=tmp_path,
        settings=waddle.Settings(console=False, system_metrics_interval=0),
    )
    readers: list[str] = []
    real_item = torch.Tensor.item

    def spying_item(self):
        readers.append(threading.current_thread().name)
        return real_item(self)

    torch.Tensor.item = spying_item
    try:
        loss = torch.tensor(2.5, requires_grad=True) * 2
        total = torch.zeros(())
        total += 1.0
        run.log({"loss": loss, "total": total, "one": torch.tensor([7])})
        total += 100.0  # changed after log(): the logged value must not change
        assert readers == []  # nothing read on the caller's thread
        run.finish()
    finally:
        torch.Tensor.item = real_item
    assert readers and all(name == "waddle-writer" for name in readers)
    data = next(e for e in events_of(run.dir) if e["type"] == "log")["data"]
    assert data == {"loss": 5.0, "total": 1.0, "one": 7}
    other = waddle.init(
        project="p",
        dir=tmp_path,
        settings=waddle.Settings(console=False, system_metrics_interval=0),
    )
    other.log({"v": torch.arange(3.0), "hist": torch.arange(100.0)})  # W&B: a list, a histogram
    other.finish()
    data = next(e for e in events_of(other.dir) if e["type"] == "log")["data"]
    assert data["v"] == [0.0, 1.0, 2.0]
    assert data["hist"]["_type"] == "histogram" and data["hist"]["count"] == 100


class OnDevice(Deferred):
    """A value a device is still computing until the test says it is done (a CUDA tensor's
    copy whose event has not completed, without a GPU)."""

    def __init__(self, value: float) -> None:
        self.value = value
        self.done = False
        self.read_before_done = False

    def ready(self) -> bool:
        return self.done

    def materialize(self, run_dir):
        self.read_before_done |= not self.done
        return self.value


def _kinds(run) -> list[str]:
    return [event["type"] for event in events_of(run.dir)]


def test_a_value_still_on_its_device_holds_back_only_itself_and_what_follows(tmp_path):
    settings = waddle.Settings(console=False, system_metrics_interval=0.02)
    run = waddle.init(project="p", dir=tmp_path, settings=settings)
    value = OnDevice(2.0)
    run.log({"a": 1.0})
    run.log({"b": value})
    run.log({"c": 3.0})
    run.config.update({"later": True})
    wait_until(lambda: "log" in _kinds(run))  # what came before is on disk
    samples = _kinds(run).count("system")
    wait_until(lambda: _kinds(run).count("system") >= samples + 3)  # the writer is not stuck
    logged = [e["data"] for e in events_of(run.dir) if e["type"] == "log"]
    assert logged == [{"a": 1.0}] and "config" not in _kinds(run)
    value.done = True
    wait_until(lambda: "config" in _kinds(run))
    run.finish()
    events = events_of(run.dir)
    assert [e["seq"] for e in events] == list(range(len(events)))
    callers = [e for e in events if e["type"] in ("log", "config")]
    assert [e.get("data") for e in callers] == [{"a": 1.0}, {"b": 2.0}, {"c": 3.0}, {"later": True}]
    assert [e["step"] for e in callers if e["type"] == "log"] == [0, 1, 2]
    assert not value.read_before_done


def test_heartbeats_go_on_while_a_value_is_on_its_device_and_finish_waits_for_it(tmp_path):
    settings = waddle.Settings(console=False, system_metrics_interval=0, heartbeat_interval=0.02)
    run = waddle.init(project="p", dir=tmp_path, settings=settings)
    value = OnDevice(5.0)
    run.log({"loss": value})
    finisher = threading.Thread(target=run.finish)
    finisher.start()
    wait_until(lambda: _kinds(run).count("heartbeat") >= 3)  # a live view sees it alive
    assert finisher.is_alive() and "finish" not in _kinds(run)
    value.done = True
    finisher.join(timeout=10)
    events = events_of(run.dir)
    assert [e["data"] for e in events if e["type"] == "log"] == [{"loss": 5.0}]
    assert events[-1]["type"] == "finish" and events[-1]["lost_values"] == 0


def test_a_short_run_still_gets_a_system_sample_taken_at_its_start(tmp_path):
    settings = waddle.Settings(console=False, system_metrics_interval=60)
    with waddle.init(project="p", dir=tmp_path, settings=settings) as run:
        run.log({"loss": 1.0})
    samples = [e["data"] for e in events_of(run.dir) if e["type"] == "system"]
    assert len(samples) == 1
    assert samples[0]["proc/rss"] > 0 and samples[0]["memory/used"] > 0
    assert "cpu/percent" not in samples[0]  # a percentage needs time between two readings

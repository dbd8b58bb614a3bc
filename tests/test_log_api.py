"""The W&B-shaped API: init, log's step semantics, values, config, summary, define_metric, alert."""

from __future__ import annotations

import argparse
import math
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import waddle
from tests.conftest import QUIET, events_of, wait_until
from waddle.values import Deferred


def logs(run) -> list[dict]:
    return [event for event in events_of(run.dir) if event["type"] == "log"]


def test_each_log_call_is_the_next_step_and_values_share_it(new_run):
    run = new_run()
    run.log({"loss": 1.0, "acc": 0.1})
    run.log({"loss": 0.5})
    run.finish()
    assert [(event["step"], event["data"]) for event in logs(run)] == [
        (0, {"loss": 1.0, "acc": 0.1}),
        (1, {"loss": 0.5}),
    ]


def test_commit_false_accumulates_keys_into_the_current_step(new_run):
    run = new_run()
    run.log({"a": 1}, commit=False)
    run.log({"b": 2}, commit=False)
    run.log({"c": 3})
    run.log({"d": 4})
    run.finish()
    assert [event["step"] for event in logs(run)] == [0, 0, 0, 1]


def test_explicit_step_stays_open_until_a_later_step(new_run):
    run = new_run()
    run.log({"a": 1}, step=5)
    run.log({"b": 2}, step=5)
    run.log({"c": 3})  # no step: joins step 5 and commits it
    run.log({"d": 4})
    assert run.step == 7
    run.finish()
    assert [event["step"] for event in logs(run)] == [5, 5, 5, 6]


def test_a_step_going_back_is_dropped_with_a_warning_and_counted(new_run, capfd):
    run = new_run()
    run.log({"loss": 1.0}, step=10)
    run.log({"loss": 2.0, "acc": 3.0}, step=3)
    run.finish()
    err = capfd.readouterr().err
    assert "step 3 is behind" in err and "2 value(s)" in err and "loss" in err
    assert [event["step"] for event in logs(run)] == [10]
    finish = events_of(run.dir)[-1]
    assert finish["type"] == "finish"
    assert finish["dropped"] == {"steps": 1, "values": 2}


def test_step_after_commit_at_same_step_is_refused(new_run):
    run = new_run()
    run.log({"a": 1}, step=2, commit=True)
    run.log({"a": 2}, step=2)
    run.finish()
    assert [event["data"]["a"] for event in logs(run)] == [1]


@pytest.mark.parametrize("step", [-1, 1.5, "3", True, 2**63 - 1, 2**64, np.uint64(2**64 - 1)])
def test_invalid_steps_raise_and_write_nothing(new_run, step):
    run = new_run()
    with pytest.raises((TypeError, ValueError), match="step"):
        run.log({"a": 1}, step=step)
    run.finish()
    assert logs(run) == []
    assert events_of(run.dir)[-1]["type"] == "finish"  # the run does not look open forever


def test_numpy_integer_step_is_accepted(new_run):
    run = new_run()
    run.log({"a": 1}, step=np.int64(4))
    run.finish()
    assert logs(run)[0]["step"] == 4


def test_values_of_every_supported_kind_round_trip(new_run):
    run = new_run()
    payload = {
        "float": 0.1,
        "int": 7,
        "big": 2**63 - 1,
        "bool": True,
        "text": "hello",
        "np_f32": np.float32(1.5),
        "np_f64": np.float64(2.25),
        "np_i8": np.int8(-3),
        "np_bool": np.bool_(False),
        "zero_d": np.array(4.5),
        "nested": {"inner": {"deep": 1.0}, "x": 2},
    }
    run.log(payload)
    run.finish()
    data = logs(run)[0]["data"]
    assert data == {
        "float": 0.1,
        "int": 7,
        "big": 2**63 - 1,
        "bool": True,
        "text": "hello",
        "np_f32": 1.5,
        "np_f64": 2.25,
        "np_i8": -3,
        "np_bool": False,
        "zero_d": 4.5,
        "nested/inner/deep": 1.0,
        "nested/x": 2,
    }


def test_nan_and_infinities_survive_exactly(new_run):
    run = new_run()
    run.log(
        {
            "nan": math.nan,
            "inf": math.inf,
            "ninf": -math.inf,
            "np_nan": np.float32("nan"),
            "ok": 1.0,
        }
    )
    run.config.update({"weird": [1.0, math.inf, {"x": math.nan}]})
    run.finish()
    data = logs(run)[0]["data"]
    assert math.isnan(data["nan"]) and math.isnan(data["np_nan"])
    assert data["inf"] == math.inf and data["ninf"] == -math.inf and data["ok"] == 1.0
    config_event = next(event for event in events_of(run.dir) if event["type"] == "config")
    weird = config_event["data"]["weird"]
    assert weird[0] == 1.0 and weird[1] == math.inf and math.isnan(weird[2]["x"])


def test_values_are_snapshotted_at_log_time(new_run):
    run = new_run()
    data = {"a": 1.0, "nested": {"b": 2.0}}
    array = np.array(3.0)
    data["arr"] = array
    run.log(data)
    data["a"] = 100.0
    data["nested"]["b"] = 200.0
    array[()] = 300.0
    run.finish()
    assert logs(run)[0]["data"] == {"a": 1.0, "nested/b": 2.0, "arr": 3.0}


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"": 1.0}, "must not be empty"),
        ({3: 1.0}, "keys must be strings"),
        ({"k" * 300: 1.0}, "the limit is 256"),
        ({"ok": 1.0, "bad": object()}, "'bad' has unsupported type"),
        ({"ok": 1.0, "c": np.complex64(1j)}, "'c' is a numpy complex64"),
        ({"ok": 1.0, "n": {"x": [1, object()]}}, "'n/x' holds a builtins.object at position 1"),
        ({"ok": 1.0, "l": [1, [2, 2**64]]}, "'l' holds an integer outside .* at position 1"),
        ({"ok": 1.0, "s": np.array(["a"] * 40)}, "'s' is a numpy array of <U1"),
        ({"ok": 1.0, "huge": 2**70}, "'huge' is an integer outside the signed 64-bit"),
        ({"ok": 1.0, "huge": 2**63}, "'huge' is an integer outside the signed 64-bit"),
        ({"ok": 1.0, "u64": np.uint64(2**63)}, "'u64' is an integer outside the signed 64-bit"),
        ({"ok": 1.0, "\ud800": 1.0}, "log\\(\\) key holds a lone surrogate"),
        ({"ok": 1.0, "s": "a\udcff"}, "value for 's' holds a lone surrogate"),
        ({"ok": 1.0, "n": {"s": "\ud800"}}, "value for 'n/s' holds a lone surrogate"),
        ({"ok": 1.0, "n": {"\ud800": 1}}, "key holds a lone surrogate"),
        ({"ok": 1.0, "np_s": np.str_("\ud800")}, "value for 'np_s' holds a lone surrogate"),
        ({"ok": 1.0, "long": "x" * (17 << 20)}, "'long' the largest.*a line of the log holds"),
        (
            {f"{'k' * 30}{i}": 1.0 for i in range(600_000)},
            "600000 values .*a line of the log holds",
        ),
    ],
)
def test_bad_values_raise_naming_the_key_and_nothing_of_the_call_is_written(
    new_run, payload, message
):
    run = new_run()
    run.log({"before": 1.0})
    with pytest.raises((TypeError, ValueError), match=message):
        run.log(payload)
    run.log({"after": 2.0})
    run.finish()
    assert [event["data"] for event in logs(run)] == [{"before": 1.0}, {"after": 2.0}]
    assert [event["step"] for event in logs(run)] == [0, 1]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda run: run.config.update({"big": 2**64}), r"config\['big'\] is an integer outside"),
        (lambda run: run.config.update({"n": {"deep": [2**63]}}), r"config\['n'\]\['deep'\]\[0\]"),
        (lambda run: run.config.update({"s": "\udc80"}), r"config\['s'\] holds a lone surrogate"),
        (lambda run: run.config.update({"\udc80": 1}), "config key holds a lone surrogate"),
        (lambda run: run.summary.update({"s": ["\udc80"]}), r"summary\['s'\]\[0\] holds"),
        (lambda run: run.alert("\ud800", "text"), "alert\\(\\) title holds a lone surrogate"),
        (lambda run: run.define_metric("\ud800"), "define_metric\\(\\) name holds"),
        (lambda run: run.log({"t": waddle.Text("\ud800")}), "text holds a lone surrogate"),
        (lambda run: run.log({"t": waddle.Table(["a"], [["\ud800"]])}), "row 0, column 'a'"),
    ],
)
def test_what_no_event_can_hold_raises_at_the_call_and_the_run_goes_on(new_run, call, message):
    run = new_run()
    with pytest.raises(ValueError, match=message):
        call(run)
    run.log({"after": 1.0})
    run.finish()
    events = events_of(run.dir)
    assert [e["data"] for e in events if e["type"] == "log"] == [{"after": 1.0}]
    assert not [e for e in events if e["type"] in ("config", "summary", "alert", "define_metric")]
    assert events[-1]["type"] == "finish" and events[-1]["lost_values"] == 0


def test_init_refuses_text_utf8_cannot_encode(tmp_path):
    for field in ("name", "notes", "group", "job_type"):
        with pytest.raises(ValueError, match=f"init\\(\\) {field} holds a lone surrogate"):
            waddle.init(project="p", dir=tmp_path, settings=QUIET, **{field: "a\udc80"})
    with pytest.raises(ValueError, match="a tag holds a lone surrogate"):
        waddle.init(project="p", dir=tmp_path, settings=QUIET, tags=["\udc80"])


def test_a_crash_whose_message_utf8_cannot_encode_still_writes_its_finish(tmp_path):
    with pytest.raises(RuntimeError), waddle.init(project="p", dir=tmp_path, settings=QUIET) as run:
        raise RuntimeError("bad bytes: \udcff")
    finish = events_of(run.dir)[-1]
    assert finish["type"] == "finish" and finish["status"] == "crashed"
    assert "bad bytes: \\udcff" in finish["traceback"]


def test_console_output_utf8_cannot_encode_or_too_long_for_a_line_is_kept(tmp_path):
    settings = waddle.Settings(system_metrics_interval=0)
    with waddle.init(project="p", dir=tmp_path, settings=settings) as run:
        sys.stdout.write("surrogate \udcff here\n")
        sys.stdout.write(("y" * 99 + "\n") * 200_000)  # 20 MB in one go
    events = events_of(run.dir)
    console = "".join(e["text"] for e in events if e["type"] == "console")
    assert "surrogate \\udcff here\n" in console
    assert console.count("y" * 99 + "\n") == 200_000
    assert events[-1]["type"] == "finish" and events[-1]["lost_values"] == 0


def test_the_writer_never_writes_a_line_readers_would_refuse(new_run, capfd):
    """A rich value can only be measured once it is materialised: too large, it is left out
    and counted, and the rest of the call and the run go on."""

    class Huge(Deferred):
        def materialize(self, run_dir):
            return {"_type": "text", "text": "x" * (17 << 20)}

    run = new_run()
    run.log({"huge": Huge(), "ok": 1.0})
    run.log({"after": 2.0})
    run.finish()
    events = events_of(run.dir)
    assert [e["data"] for e in events if e["type"] == "log"] == [{"ok": 1.0}, {"after": 2.0}]
    assert events[-1]["lost_values"] == 1
    assert "could not write a value of a log event" in capfd.readouterr().err


def test_log_takes_a_dict(new_run):
    run = new_run()
    with pytest.raises(TypeError, match="takes a dict"):
        run.log([1, 2])


def test_log_after_finish_warns_once_and_writes_nothing(new_run, capfd):
    run = new_run()
    run.log({"a": 1})
    run.finish()
    before = (run.dir / "events-000000000000.jsonl").read_bytes()
    run.log({"a": 2})
    run.log({"a": 3})
    err = capfd.readouterr().err
    assert err.count("is finished; log() is ignored") == 1
    assert (run.dir / "events-000000000000.jsonl").read_bytes() == before


def test_config_attribute_item_and_update_access(new_run):
    namespace = argparse.Namespace(lr=0.1, layers=[64, 64], device=Path("/dev/x"))
    run = new_run(config=namespace)
    assert run.config.lr == 0.1 and run.config["layers"] == [64, 64]
    assert run.config.device == "/dev/x"  # unknown objects are kept as their str()
    run.config.batch = 32
    run.config["epochs"] = 3
    run.config.update({"lr": 0.2, "np": np.float32(0.5)})
    with pytest.raises(AttributeError, match="no key 'missing'"):
        _ = run.config.missing
    run.finish()
    events = events_of(run.dir)
    assert events[0]["type"] == "run_start"
    assert events[0]["config"] == {"lr": 0.1, "layers": [64, 64], "device": "/dev/x"}
    changes = [event["data"] for event in events if event["type"] == "config"]
    assert changes == [{"batch": 32}, {"epochs": 3}, {"lr": 0.2, "np": 0.5}]


def test_summary_is_last_logged_unless_set_explicitly(new_run):
    run = new_run()
    run.log({"loss": 3.0, "acc": 0.1})
    run.log({"loss": 2.0})
    assert run.summary["loss"] == 2.0
    run.summary["loss"] = 1.5
    run.summary.update({"best_acc": 0.9})
    run.log({"loss": 1.0})
    assert run.summary["loss"] == 1.5
    assert run.summary["acc"] == 0.1
    assert set(run.summary.keys()) == {"loss", "acc", "best_acc"}
    run.finish()
    summaries = [event["data"] for event in events_of(run.dir) if event["type"] == "summary"]
    assert summaries == [{"loss": 1.5}, {"best_acc": 0.9}]


def test_define_metric_and_alert_are_recorded_and_checked(new_run):
    run = new_run()
    run.define_metric("val/*", step_metric="epoch", summary="max")
    run.define_metric("loss", summary="min,last")
    with pytest.raises(ValueError, match="'median' is not one of"):
        run.define_metric("x", summary="median")
    run.alert("diverged", "loss is NaN", level="WARN")
    with pytest.raises(ValueError, match="alert level"):
        run.alert("t", "x", level="LOUD")
    run.finish()
    events = events_of(run.dir)
    metrics = [
        (e["name"], e.get("step_metric"), e.get("summary"))
        for e in events
        if e["type"] == "define_metric"
    ]
    assert metrics == [("val/*", "epoch", "max"), ("loss", None, "min,last")]
    alerts = [(e["title"], e["text"], e["level"]) for e in events if e["type"] == "alert"]
    assert alerts == [("diverged", "loss is NaN", "WARN")]


def test_run_start_carries_identity_and_context(new_run):
    run = new_run(name="baseline", tags=["a", "b"], notes="first try", group="g", job_type="train")
    run.finish()
    start = events_of(run.dir)[0]
    assert start["seq"] == 0 and start["type"] == "run_start"
    assert (start["project"], start["run_id"], start["name"]) == ("p", run.id, "baseline")
    assert (start["tags"], start["notes"], start["group"], start["job_type"]) == (
        ["a", "b"],
        "first try",
        "g",
        "train",
    )
    context = start["context"]
    for key in ("host", "user", "os", "python", "argv", "cwd", "pid", "cpu_count", "memory_total"):
        assert key in context, key
    assert "gpus" not in context  # no GPU on this machine: no GPU facts, no error
    assert (
        "git" in context and len(context["git"]["commit"]) == 40
    )  # the tests run in a git checkout


def test_seq_is_gap_free_from_zero_and_the_finish_event_is_last(new_run):
    run = new_run()
    for step in range(500):
        run.log({"x": step})
    run.summary["s"] = 1
    run.finish()
    events = events_of(run.dir)
    assert [event["seq"] for event in events] == list(range(len(events)))
    assert events[-1]["type"] == "finish" and events[-1]["status"] == "finished"
    assert events[-1]["last_step"] == 499


def test_module_level_functions_act_on_the_current_run(tmp_path):
    run = waddle.init(project="p", dir=tmp_path, settings=QUIET)
    assert waddle.run is run
    waddle.log({"a": 1})
    waddle.config.update({"lr": 1})
    waddle.summary["best"] = 2
    waddle.define_metric("a", summary="max")
    waddle.alert("hi", "there")
    waddle.finish()
    assert waddle.run is None
    with pytest.raises(RuntimeError, match=r"Call waddle.init\(\) before waddle.log\(\)"):
        waddle.log({"a": 1})
    with pytest.raises(AttributeError, match=r"call waddle\.init"):
        _ = waddle.config
    types = [event["type"] for event in events_of(run.dir)]
    assert types == ["run_start", "log", "config", "summary", "define_metric", "alert", "finish"]


def test_context_manager_finishes_and_records_a_crash(tmp_path):
    with waddle.init(project="p", dir=tmp_path, settings=QUIET) as ok:
        ok.log({"a": 1})
    assert events_of(ok.dir)[-1]["status"] == "finished"
    with (
        pytest.raises(ZeroDivisionError),
        waddle.init(project="p", dir=tmp_path, settings=QUIET) as bad,
    ):
        bad.log({"a": 1})
        _ = 1 / 0
    finish = events_of(bad.dir)[-1]
    assert finish["status"] == "crashed" and finish["reason"] == "ZeroDivisionError"
    assert "ZeroDivisionError" in finish["traceback"]


def test_finish_with_a_nonzero_exit_code_is_a_crash(new_run):
    run = new_run()
    run.finish(exit_code=3)
    run.finish()  # a second finish does nothing
    finishes = [event for event in events_of(run.dir) if event["type"] == "finish"]
    assert [(f["exit_code"], f["status"]) for f in finishes] == [(3, "crashed")]


def test_disabled_mode_has_the_same_api_and_writes_nothing(tmp_path):
    run = waddle.init(project="p", dir=tmp_path, mode="disabled")
    run.log({"a": 1}, step=3, commit=True)
    run.config.lr = 1
    run.summary["x"] = 1
    run.define_metric("a", summary="max")
    run.alert("t", "x")
    with run:
        pass
    run.finish()
    assert list(tmp_path.iterdir()) == []


def test_several_runs_in_one_process_are_independent(tmp_path):
    first = waddle.init(project="p", dir=tmp_path, settings=QUIET)
    second = waddle.init(project="q", dir=tmp_path, settings=QUIET, reinit="create_new")
    assert waddle.run is first  # as in W&B, a run made beside another is not the current one
    first.log({"a": 1})
    second.log({"b": 2})
    second.log({"b": 3})
    first.log({"a": 4})
    first.finish()
    second.log({"b": 5})
    second.finish()
    assert [(e["step"], e["data"]) for e in logs(first)] == [(0, {"a": 1}), (1, {"a": 4})]
    assert [(e["step"], e["data"]) for e in logs(second)] == [
        (0, {"b": 2}),
        (1, {"b": 3}),
        (2, {"b": 5}),
    ]
    assert first.dir.parent.name == "p" and second.dir.parent.name == "q"


@pytest.mark.parametrize("project", ["../escape", "a/b", ".hidden", "x" * 200])
def test_unsafe_project_names_are_refused(tmp_path, project):
    with pytest.raises(ValueError, match="project"):
        waddle.init(project=project, dir=tmp_path, settings=QUIET)
    assert list(tmp_path.iterdir()) == []


def test_run_ids_are_unique_and_sort_by_creation(new_run):
    runs = [new_run() for _ in range(5)]
    ids = [run.id for run in runs]
    assert len(set(ids)) == 5
    assert ids == sorted(ids)


def test_settings_come_from_argument_then_environment_then_default(monkeypatch):
    monkeypatch.setenv("WADDLE_QUEUE_SIZE", "123")
    monkeypatch.setenv("WADDLE_FSYNC_INTERVAL", "7.5")
    resolved = waddle.Settings(fsync_interval=1.0).resolve()
    assert resolved.queue_size == 123
    assert resolved.fsync_interval == 1.0
    assert resolved.segment_bytes == 64 * 1024 * 1024
    monkeypatch.setenv("WADDLE_CONSOLE", "maybe")
    with pytest.raises(ValueError, match="WADDLE_CONSOLE='maybe' is not valid"):
        waddle.Settings().resolve()


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("console", "off", False),
        ("console", "On", True),
        ("flush_interval", "0.5", 0.5),
        ("queue_size", "123", 123),
        ("system_metrics_interval", "0", 0.0),
    ],
)
def test_a_setting_given_as_text_means_what_its_variable_means(monkeypatch, name, text, expected):
    assert getattr(waddle.Settings(**{name: text}).resolve(), name) == expected
    variable = waddle.settings.SETTINGS[name][0]
    monkeypatch.setenv(variable, text)
    assert getattr(waddle.Settings().resolve(), name) == expected


@pytest.mark.parametrize(
    ("name", "value"),
    [("console", "maybe"), ("queue_size", "many"), ("queue_size", 0), ("flush_interval", -1.0)],
)
def test_an_invalid_setting_raises_naming_it(name, value):
    with pytest.raises(ValueError, match=f"setting {name}={value!r} is not valid"):
        waddle.Settings(**{name: value}).resolve()


def test_console_off_given_as_text_captures_nothing(tmp_path, capfd):
    settings = waddle.Settings(console="off", system_metrics_interval=0)
    with waddle.init(project="p", dir=tmp_path, settings=settings) as run:
        print("not for the log")
    assert "not for the log" in capfd.readouterr().out
    assert not [event for event in events_of(run.dir) if event["type"] == "console"]


def test_public_api_is_what_init_exports():
    assert sorted(waddle.__all__) == waddle.__all__
    for name in waddle.__all__:
        assert name in ("run", "config", "summary") or hasattr(waddle, name), name


def test_git_context_records_commit_branch_remote_and_a_dirty_diff(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    repo.mkdir()

    def git(*args):
        subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)

    git("init", "-q", "-b", "trunk")
    git("config", "user.email", "t@example.com")
    git("config", "user.name", "t")
    git("remote", "add", "origin", "https://example.com/team/model.git")
    (repo / "train.py").write_text("lr = 1\n")
    git("add", "train.py")
    git("commit", "-qm", "first")
    monkeypatch.chdir(repo)

    clean = waddle.init(project="p", dir=tmp_path / "logs", settings=QUIET)
    clean.finish()
    (repo / "train.py").write_text("lr = 2\n")
    dirty = waddle.init(project="p", dir=tmp_path / "logs", settings=QUIET)
    dirty.finish()

    clean_git = events_of(clean.dir)[0]["context"]["git"]
    dirty_git = events_of(dirty.dir)[0]["context"]["git"]
    assert (
        clean_git["branch"] == "trunk"
        and clean_git["remote"] == "https://example.com/team/model.git"
    )
    assert clean_git["dirty"] is False and clean_git["diff"] == ""
    assert dirty_git["dirty"] is True and "+lr = 2" in dirty_git["diff"]
    assert dirty_git["commit"] == clean_git["commit"] and len(clean_git["commit"]) == 40


def test_init_log_and_finish_leave_the_global_random_states_alone(tmp_path):
    random.seed(1)
    np.random.seed(1)
    expected = (random.random(), np.random.random())
    random.seed(1)
    np.random.seed(1)
    settings = waddle.Settings(console=False, system_metrics_interval=0.01)
    run = waddle.init(project="p", dir=tmp_path, settings=settings)
    run.log({"loss": 1.0, "hist": waddle.Histogram(np.arange(100.0))})
    wait_until(lambda: any(e["type"] == "system" for e in events_of(run.dir)))
    run.finish()
    assert (random.random(), np.random.random()) == expected


def test_two_runs_of_a_seeded_script_get_different_ids_and_names(tmp_path):
    runs = []
    for _ in range(2):
        random.seed(0)
        runs.append(waddle.init(project="p", dir=tmp_path, settings=QUIET))
        runs[-1].finish()
    first, second = runs
    assert first.id[-6:] != second.id[-6:]
    assert first.name != second.name

"""`import waddle as wandb`: W&B's signatures, environment and semantics, in-process.

The scripts that run unchanged under both are in tests/test_wandb_scripts.py.
"""

from __future__ import annotations

import sys

import pytest

import waddle
from tests.conftest import QUIET, events_of


def test_init_takes_every_argument_of_wandbs_signature(tmp_path):
    wandb = pytest.importorskip("wandb")
    import inspect

    ours = inspect.signature(waddle.init).parameters
    missing = [name for name in inspect.signature(wandb.init).parameters if name not in ours]
    assert not missing


def test_wandb_arguments_without_a_meaning_here_are_accepted(tmp_path, capfd):
    run = waddle.init(
        project="p",
        dir=tmp_path,
        settings=QUIET,
        entity="team",
        anonymous="allow",
        allow_val_change=True,
        force=False,
        monitor_gym=True,
        config={"lr": 0.1, "secret": 1, "batch": 8},
        config_exclude_keys=["secret"],
    )
    assert dict(run.config) == {"lr": 0.1, "batch": 8}
    run.finish()
    assert "init(monitor_gym=...) is not supported" in capfd.readouterr().err
    filtered = waddle.init(
        project="p",
        dir=tmp_path,
        settings=QUIET,
        config={"a": 1, "b": 2},
        config_include_keys=["a"],
    )
    assert dict(filtered.config) == {"a": 1}


def test_wandb_settings_names_are_accepted_and_the_meaningful_ones_apply(tmp_path, capfd):
    settings = waddle.Settings(
        silent=True, start_method="thread", _disable_stats=True, console="off", init_timeout=90
    )
    assert settings.ignored == {"start_method": "thread", "init_timeout": 90}
    resolved = settings.resolve()
    assert resolved.silent and resolved.system_metrics_interval == 0 and not resolved.console
    with waddle.init(project="p", dir=tmp_path, settings={"silent": True, "_service_wait": 30}):
        pass
    assert "started run" not in capfd.readouterr().err


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({"WANDB_PROJECT": "wp", "WANDB_NAME": "wn"}, {"project": "wp", "name": "wn"}),
        ({"WANDB_PROJECT": "wp", "WADDLE_PROJECT": "dp"}, {"project": "dp"}),  # ours wins
        ({"WANDB_TAGS": "a, b,c", "WANDB_NOTES": "n"}, {"tags": ("a", "b", "c"), "notes": "n"}),
        ({"WANDB_RUN_GROUP": "g", "WANDB_JOB_TYPE": "train"}, {"group": "g", "job_type": "train"}),
    ],
)
def test_wandb_environment_variables_fill_init_arguments(
    tmp_path, monkeypatch, variables, expected
):
    for variable, value in variables.items():
        monkeypatch.setenv(variable, value)
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    with waddle.init(settings=QUIET) as run:
        pass
    for name, value in expected.items():
        assert getattr(run, name) == value
    assert run.dir.parent.parent == tmp_path


def test_wandb_mode_disabled_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    run = waddle.init(project="p", dir=tmp_path)
    run.log({"x": 1})
    run.finish()
    assert isinstance(run, waddle.DisabledRun) and not any(tmp_path.iterdir())


def test_wandb_run_id_and_resume_continue_the_run_as_a_shell_script_does(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_RUN_ID", "job-7")
    monkeypatch.setenv("WANDB_RESUME", "allow")
    for step in range(2):
        with waddle.init(project="p", dir=tmp_path, settings=QUIET) as run:
            run.log({"loss": float(step)})
    assert [path.name for path in (tmp_path / "p").iterdir()] == ["job-7"]
    logs = [e for e in events_of(run.dir) if e["type"] == "log"]
    assert [(e["step"], e["data"]["loss"]) for e in logs] == [(0, 0.0), (1, 1.0)]


def test_a_second_init_returns_the_open_run_as_wandb_does(tmp_path):
    first = waddle.init(project="p", dir=tmp_path, settings=QUIET)
    assert waddle.init(project="p", dir=tmp_path, settings=QUIET) is first
    finishing = waddle.init(project="p", dir=tmp_path, settings=QUIET, reinit="finish_previous")
    assert finishing is not first and first._closed and waddle.run is finishing
    beside = waddle.init(project="p", dir=tmp_path, settings=QUIET, reinit="create_new")
    assert waddle.run is finishing and not finishing._closed
    with pytest.raises(ValueError, match=r"init\(resume='must'\) while run"):
        waddle.init(project="p", dir=tmp_path, settings=QUIET, id=beside.id, resume="must")
    beside.finish()
    finishing.finish()


def test_mode_online_logs_locally_with_one_warning(tmp_path, capfd):
    with waddle.init(project="p", dir=tmp_path, settings=QUIET, mode="online") as run:
        run.log({"x": 1.0})
    assert [e["data"] for e in events_of(run.dir) if e["type"] == "log"] == [{"x": 1.0}]
    assert capfd.readouterr().err.count("mode 'online'") == 1


def test_save_code_keeps_the_main_script(tmp_path, monkeypatch):
    script = tmp_path / "train.py"
    script.write_text("print('training')\n")
    monkeypatch.setattr(sys.modules["__main__"], "__file__", str(script), raising=False)
    monkeypatch.chdir(tmp_path)
    with waddle.init(project="p", dir=tmp_path / "logs", settings=QUIET, save_code=True) as run:
        pass
    saved = [e["name"] for e in events_of(run.dir) if e["type"] == "file"]
    assert saved == ["code/train.py"]


def test_log_code_saves_source_files_and_skips_what_git_ignores(tmp_path, monkeypatch):
    import subprocess

    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "model.py").write_text("x = 1\n")
    (tmp_path / "train.py").write_text("y = 2\n")
    (tmp_path / "notes.md").write_text("not code\n")
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "generated.py").write_text("z = 3\n")
    (tmp_path / ".gitignore").write_text("build/\nlogs/\n")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    with waddle.init(project="p", dir=tmp_path / "logs", settings=QUIET) as run:
        run.log_code(str(tmp_path))
    saved = sorted(e["name"] for e in events_of(run.dir) if e["type"] == "file")
    assert saved == ["code/pkg/model.py", "code/train.py"]


def test_a_disabled_run_has_every_method_of_a_run(tmp_path):
    disabled = waddle.init(project="p", dir=tmp_path, mode="disabled")
    public = [name for name in dir(waddle.Run) if not name.startswith("_")]
    for name in public:
        attribute = getattr(disabled, name)
        if callable(getattr(waddle.Run, name)):
            assert attribute() is None or name == "flush"


def test_the_summary_keeps_what_define_metric_asked_for_as_wandb_does(new_run):
    run = new_run()
    run.define_metric("m", summary="max")
    run.define_metric("val/*", summary="min,mean")
    run.define_metric("h", summary="none")
    run.define_metric("g", goal="maximize", step_sync=True, overwrite=True)
    for value in (1.0, 5.0, 3.0):
        run.log({"m": value, "val/loss": value, "h": value, "plain": value, "g": value})
    assert run.summary["m"] == {"max": 5.0}
    assert run.summary["val/loss"] == {"min": 1.0, "mean": 3.0}
    assert "h" not in run.summary and run.summary.get("h") is None
    assert run.summary["plain"] == 3.0 and run.summary["g"] == 3.0
    run.summary["m"] = "explicit"  # an explicit value wins, as before
    assert run.summary["m"] == "explicit"
    with pytest.raises(ValueError, match="goal must be minimize or maximize"):
        run.define_metric("x", goal="up")


def test_a_defined_summary_of_a_key_that_logs_text_keeps_the_run_logging(new_run):
    """define_metric(summary=...) of a key that gets text or a list: its summary is the last
    value (W&B's), and every event after it still reaches the log (a string once stopped the
    writer thread: it was taken for a number)."""
    run = new_run()
    run.define_metric("note", summary="max")
    run.define_metric("tags/*", summary="none")
    for step in range(3):
        run.log({"note": f"n{step}", "tags/a": [step, 1], "x": float(step)})
    assert run.summary["note"] == "n2" and "tags/a" not in run.summary
    assert run.summary["x"] == 2.0
    run.finish()
    logged = [e["data"] for e in events_of(run.dir) if e["type"] == "log"]
    assert [data["x"] for data in logged] == [0.0, 1.0, 2.0]
    assert events_of(run.dir)[-1]["type"] == "finish"


def test_alert_levels_login_setup_and_terminal_helpers(new_run, capfd):
    assert waddle.login() is True and waddle.login(key="x", relogin=True) is True
    assert waddle.setup() is None
    run = new_run()
    run.alert("slow", "epoch took long", level=waddle.AlertLevel.WARN)
    waddle.termlog("hello")
    waddle.termwarn("careful")
    run.mark_preempting()
    assert run.path == f"p/{run.id}" and run.url is None and run.get_url() is None
    run.finish()
    events = events_of(run.dir)
    alert = next(e for e in events if e["type"] == "alert")
    assert alert["level"] == "WARN" and events[-1]["preempting"] is True
    err = capfd.readouterr().err
    assert "waddle: hello" in err and "waddle: warning: careful" in err
    assert len(waddle.util.generate_id()) == 8


def test_none_lists_and_arrays_are_logged_as_wandb_logs_them(new_run):
    np = pytest.importorskip("numpy")
    run = new_run()
    run.log(
        {
            "none": None,
            "short": [1, 2.5, None, "a", True, [3, 4]],
            "tuple": (1.0, float("nan")),
            "small_array": np.arange(3.0),
            "one": np.array([7]),
            "long_array": np.arange(100.0),
            "grid": np.zeros((2, 3), dtype=np.int32),
            "long_list": list(range(100)),  # a Python list stays a list, whatever its length
        }
    )
    run.finish()
    data = next(e for e in events_of(run.dir) if e["type"] == "log")["data"]
    assert data["none"] is None
    assert data["short"] == [1, 2.5, None, "a", True, [3, 4]]
    assert data["tuple"][0] == 1.0 and data["tuple"][1] != data["tuple"][1]  # NaN kept
    assert data["small_array"] == [0.0, 1.0, 2.0] and data["one"] == 7
    assert data["grid"] == [[0, 0, 0], [0, 0, 0]]
    assert data["long_array"]["_type"] == "histogram" and len(data["long_array"]["counts"]) == 32
    assert data["long_list"] == list(range(100))


def test_matplotlib_figures_are_logged_as_png_images(new_run):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run = new_run()
    figure, axes = plt.subplots(figsize=(2, 1.5), dpi=50)
    axes.plot([0, 1, 2], [1, 0, 1])
    run.log({"module": plt, "figure": figure, "axes": axes, "image": waddle.Image(figure)})
    plt.close(figure)
    run.finish()
    data = next(e for e in events_of(run.dir) if e["type"] == "log")["data"]
    for key in ("module", "figure", "axes", "image"):
        value = data[key]
        assert value["_type"] == "image" and value["mime"] == "image/png", key
        assert (value["width"], value["height"]) == (100, 75)
        assert (run.dir / value["path"]).read_bytes().startswith(b"\x89PNG")


def test_a_dataframe_is_logged_as_a_table(new_run):
    pandas = pytest.importorskip("pandas")
    run = new_run()
    run.log({"frame": pandas.DataFrame({"a": [1, 2], "b": ["x", "y"]})})
    run.finish()
    value = next(e for e in events_of(run.dir) if e["type"] == "log")["data"]["frame"]
    assert value["_type"] == "table" and value["columns"] == ["a", "b"] and value["rows"] == 2


def test_table_columns_can_be_added_read_and_turned_into_a_dataframe(new_run):
    table = waddle.Table(columns=["id"], data=[[1], [2]])
    table.add_column("score", [0.5, 0.25])
    assert table.get_column("score") == [0.5, 0.25]
    assert list(table.get_column("id", convert_to="numpy")) == [1, 2]
    with pytest.raises(ValueError, match="column 'bad' has 1 cells but the table has 2 rows"):
        table.add_column("bad", [1])
    empty = waddle.Table(columns=[])
    empty.add_column("x", [1, 2, 3])
    assert empty.data == [[1], [2], [3]]
    pandas = pytest.importorskip("pandas")
    frame = table.get_dataframe()
    assert isinstance(frame, pandas.DataFrame) and list(frame["score"]) == [0.5, 0.25]
    run = new_run()
    run.log({"t": table})
    run.finish()
    value = next(e for e in events_of(run.dir) if e["type"] == "log")["data"]["t"]
    assert value["columns"] == ["id", "score"] and value["rows"] == 2


def test_save_takes_globs_base_path_and_the_end_policy(new_run, tmp_path, capfd):
    folder = tmp_path / "out"
    (folder / "ckpt").mkdir(parents=True)
    for name in ("a.txt", "b.txt", "c.log"):
        (folder / name).write_text(name)
    (folder / "ckpt" / "last.pt").write_bytes(b"weights")
    run = new_run()
    saved = run.save(str(folder / "*.txt"))
    assert sorted(saved) == [str(folder / "a.txt"), str(folder / "b.txt")]
    run.save(str(folder / "**" / "*.pt"), base_path=str(folder))
    waddle.save(str(folder / "c.log"), policy="end")
    (folder / "c.log").write_text("written later")  # "end": saved as the run finishes
    assert run.save(str(folder / "*.none")) == []
    with pytest.raises(ValueError, match="policy 'sometimes'"):
        run.save(str(folder / "a.txt"), policy="sometimes")
    with pytest.raises(ValueError, match="is not under base_path"):
        run.save(str(folder / "a.txt"), base_path=str(tmp_path / "elsewhere"))
    run.finish()
    files = {e["name"]: e for e in events_of(run.dir) if e["type"] == "file"}
    assert sorted(files) == ["a.txt", "b.txt", "c.log", "ckpt/last.pt"]
    assert (run.dir / files["c.log"]["path"]).read_text() == "written later"
    assert "matched no file" in capfd.readouterr().err


def test_watch_logs_gradient_and_parameter_histograms_every_log_freq_batches(new_run):
    torch = pytest.importorskip("torch")
    run = new_run()
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    run.watch(model, log="all", log_freq=2, log_graph=True)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for step in range(6):
        if step == 4:
            run.unwatch(model)
        loss = model(torch.randn(8, 3)).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        run.log({"loss": loss})
    run.finish()
    rows: dict[int, dict] = {}
    for event in events_of(run.dir):
        if event["type"] == "log":
            rows.setdefault(event["step"], {}).update(event["data"])
    gradient_steps = sorted(step for step, row in rows.items() if "gradients/0.weight" in row)
    parameter_steps = sorted(step for step, row in rows.items() if "parameters/0.weight" in row)
    assert gradient_steps == [1, 3] and parameter_steps == [1, 3]  # every 2nd batch, until unwatch
    histogram = rows[1]["gradients/2.bias"]
    assert histogram["_type"] == "histogram" and histogram["count"] == 1
    assert (
        rows[3]["parameters/0.weight"]["count"] == 12
        and len(rows[3]["parameters/0.weight"]["counts"]) == 64
    )
    assert "Linear(in_features=3" in rows[0]["graph"]["text"]
    assert all("loss" in row for row in rows.values())


def _logged(run, key):
    return next(e for e in events_of(run.dir) if e["type"] == "log" and key in e["data"])["data"][
        key
    ]


def test_preset_charts_are_stored_as_a_table_and_what_to_draw(new_run):
    from waddle.table import read_table

    run = new_run()
    table = waddle.Table(columns=["x", "y"], data=[[0, 1.0], [1, 0.5]])
    probas = [[0.9, 0.1], [0.6, 0.4], [0.65, 0.35], [0.2, 0.8]]
    run.log(
        {
            "line": waddle.plot.line(table, "x", "y", title="loss"),
            "series": waddle.plot.line_series([0, 1, 2], [[1, 2, 3], [3, 2, 1]], keys=["a", "b"]),
            "roc": waddle.plot.roc_curve([0, 0, 1, 1], probas, classes_to_plot=[1]),
            "pr": waddle.plot.pr_curve([0, 0, 1, 1], probas, labels=["no", "yes"], interp_size=3),
            "cm": waddle.plot.confusion_matrix(
                y_true=[0, 1, 1], preds=[0, 1, 0], class_names=["n", "y"]
            ),
        }
    )
    run.finish()
    line = _logged(run, "line")
    assert (line["_type"], line["chart"], line["fields"], line["title"]) == (
        "chart",
        "line",
        {"x": "x", "y": "y", "stroke": None},
        "loss",
    )
    assert read_table(run.dir, line["table"])["data"] == [[0, 1.0], [1, 0.5]]
    series = read_table(run.dir, _logged(run, "series")["table"])
    assert series["columns"] == ["step", "lineKey", "lineVal"] and series["data"][3] == [0, "b", 3]
    roc = read_table(run.dir, _logged(run, "roc")["table"])["data"]
    assert [(fpr, tpr) for _, fpr, tpr in roc] == [
        (0.0, 0.0),
        (0.0, 0.5),
        (0.5, 0.5),
        (0.5, 1.0),
        (1.0, 1.0),
    ]
    pr = read_table(run.dir, _logged(run, "pr")["table"])["data"]
    assert [row for row in pr if row[0] == "yes"] == [
        ["yes", 1.0, 0.0],
        ["yes", 1.0, 0.5],
        ["yes", 0.667, 1.0],
    ]
    cm = read_table(run.dir, _logged(run, "cm")["table"])["data"]
    assert cm == [["n", "n", 1], ["n", "y", 0], ["y", "n", 1], ["y", "y", 1]]
    with pytest.raises(ValueError, match="no column 'z'"):
        waddle.plot.scatter(table, "x", "z")


def test_html_and_object3d_are_stored_as_files(new_run, tmp_path):
    np = pytest.importorskip("numpy")
    page = tmp_path / "page.html"
    page.write_text("<h1>report</h1>")
    model = tmp_path / "mesh.obj"
    model.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    run = new_run()
    cloud = np.array([[0, 0, 0, 255, 0, 0], [1, 2, 3, 0, 255, 0]], dtype=np.float64)
    run.log(
        {
            "text": waddle.Html("<b>hi</b>"),
            "file": waddle.Html(str(page)),
            "cloud": waddle.Object3D(cloud),
            "mesh": waddle.Object3D(str(model)),
        }
    )
    run.finish()
    assert (run.dir / _logged(run, "text")["path"]).read_text() == "<b>hi</b>"
    assert (run.dir / _logged(run, "file")["path"]).read_text() == "<h1>report</h1>"
    value = _logged(run, "cloud")
    assert (value["_type"], value["points"], value["columns"]) == ("object3d", 2, 6)
    stored = np.frombuffer((run.dir / value["path"]).read_bytes(), dtype="<f4").reshape(2, 6)
    assert (stored == cloud).all()
    assert _logged(run, "mesh")["mime"] == "model/obj"
    with pytest.raises(ValueError, match=r"shape \(N, 3\), \(N, 4\) or \(N, 6\)"):
        waddle.Object3D(np.zeros((4, 5)))

"""Simulated training jobs: what ``waddle demo`` runs, and a template for real scripts.

``train()`` logs a short finished run (scalars; with ``rich=True`` every data type waddle
records: images with boxes, audio, video, a table, histograms, text with its expected text,
markdown, charts (waddle.plot), an HTML page, a point cloud, a plain list, console output, an
alert, a saved file, a model artifact and system metrics). ``train_live()`` keeps a
run training for a while, so a dashboard has something that moves.
"""

from __future__ import annotations

import math
import random
import tempfile
import time
from pathlib import Path

import numpy as np

import waddle


def train(
    dir: str | None = None,
    project: str = "demo",
    steps: int = 300,
    seed: int = 0,
    rich: bool = False,
) -> waddle.Run:
    rng = random.Random(seed)
    config = {"lr": 3e-4, "batch_size": 64, "optimizer": "adam", "epochs": max(1, steps // 100)}
    settings = waddle.Settings(system_metrics_interval=0.2) if rich else None
    with waddle.init(
        project=project,
        dir=dir,
        config=config,
        tags=["demo"],
        notes="simulated training",
        name="demo-every-type" if rich else None,
        settings=settings,
    ) as run:
        run.define_metric("val/*", step_metric="epoch")
        run.define_metric("train/loss", summary="min")
        steps_per_epoch = max(1, steps // config["epochs"])
        for step in range(steps):
            progress = step / max(1, steps - 1)
            loss = 2.5 * math.exp(-4 * progress) + 0.1 + rng.gauss(0, 0.05)
            lr = config["lr"] * 0.5 * (1 + math.cos(math.pi * progress))
            values = {"train/loss": loss, "train/lr": lr, "train/grad_norm": abs(rng.gauss(1, 0.3))}
            if (step + 1) % steps_per_epoch == 0:
                epoch = (step + 1) // steps_per_epoch
                accuracy = 1 - 0.9 * math.exp(-3 * progress) + rng.gauss(0, 0.01)
                values.update({"epoch": epoch, "val/accuracy": accuracy, "val/loss": loss * 1.1})
                print(f"epoch {epoch}: val/accuracy={accuracy:.3f}")
            if rich:
                values.update(_rich_values(step, steps, progress, np.random.default_rng(step)))
                time.sleep(0.005)  # a run of a few seconds, so system metrics have a curve
            run.log(values)
        run.summary["final_accuracy"] = accuracy
        if rich:
            _finish_rich(run)
    return run


def _rich_values(step: int, steps: int, progress: float, rng: np.random.Generator) -> dict:
    """Every rich type at a few steps of the run (scalars stay in every step)."""
    values: dict = {}
    if step == steps // 3:
        values["train/grad_norm"] = math.nan  # a NaN the charts must mark, not hide
    if step % 10 == 0:
        weights = rng.normal(0, 1 - 0.6 * progress, 5000)
        values["weights/layer1"] = waddle.Histogram(weights)
    if step % max(1, steps // 4) == 0 or step == steps - 1:
        values["examples/predictions"] = [_image(rng, progress, i) for i in range(4)]
        values["examples/audio"] = waddle.Audio(_tone(440 + 220 * progress), sample_rate=8000)
        values["examples/video"] = waddle.Video(_frames(progress), fps=8)
        values["samples/text"] = waddle.Text(
            "the cat sat on the mat" if progress > 0.5 else "teh cat sat in teh mat",
            expected="the cat sat on the mat",
        )
        values["report/markdown"] = waddle.Markdown(
            f"## Step {step}\n\n*Loss* is going **down**; see `train/loss`.\n\n"
            f"| metric | value |\n|---|---|\n| progress | {progress:.2f} |\n"
        )
        table = waddle.Table(columns=["id", "image", "label", "score"])
        for i in range(6):
            table.add_data(
                i, _image(rng, progress, i), ["cat", "dog", "bird"][i % 3], float(rng.random())
            )
        values["eval/table"] = table
        values.update(_eval_values(step, progress, rng))
    return values


CLASSES = ["cat", "dog", "bird"]


def _eval_values(step: int, progress: float, rng: np.random.Generator) -> dict:
    """An evaluation as W&B users log one: preset charts, an HTML report, a point cloud and
    a plain list, each better as training goes on."""
    truth = rng.integers(0, 3, 200)
    scores = rng.random((200, 3)) + np.eye(3)[truth] * (0.1 + 0.6 * progress)
    predicted = scores.argmax(axis=1)
    per_class = [round(float((predicted[truth == c] == c).mean()), 3) for c in range(3)]
    counts = waddle.Table(
        columns=["class", "accuracy"],
        data=[[n, a] for n, a in zip(CLASSES, per_class, strict=True)],
    )
    angle = np.linspace(0, 6 * math.pi, 600)
    radius = 1 + 0.3 * rng.standard_normal(600) * (1 - progress)
    cloud = np.column_stack(
        [
            radius * np.cos(angle),
            angle / (2 * math.pi) - 1.5,
            radius * np.sin(angle),
            127 + 127 * np.cos(angle),
            127 + 127 * np.sin(angle),
            np.full(600, 200.0),
        ]
    )
    return {
        "eval/roc": waddle.plot.roc_curve(truth, scores, labels=CLASSES),
        "eval/confusion": waddle.plot.confusion_matrix(
            y_true=truth, preds=predicted, class_names=CLASSES
        ),
        "eval/accuracy_per_class": waddle.plot.bar(counts, "class", "accuracy", "accuracy"),
        "eval/per_class": per_class,
        "report/html": waddle.Html(
            f"<h3>Evaluation at step {step}</h3><p>accuracy per class: "
            + ", ".join(f"{n} <b>{a:.2f}</b>" for n, a in zip(CLASSES, per_class, strict=True))
            + "</p>"
        ),
        "examples/point_cloud": waddle.Object3D(cloud, caption="a noisy helix"),
    }


def _image(rng: np.random.Generator, progress: float, index: int) -> waddle.Image:
    height, width = 64, 96
    y, x = np.mgrid[0:height, 0:width]
    pixels = (
        np.stack(
            [
                (x / width * 255),
                (y / height * 255),
                np.full((height, width), 128 + 100 * math.sin(index + progress * 3)),
            ],
            axis=-1,
        )
        .clip(0, 255)
        .astype(np.uint8)
    )
    boxes = {
        "predictions": {
            "box_data": [
                {
                    "position": {
                        "minX": 8 + 4 * index,
                        "maxX": 48 + 4 * index,
                        "minY": 8,
                        "maxY": 40,
                    },
                    "class_id": index % 3,
                    "box_caption": f"{['cat', 'dog', 'bird'][index % 3]}",
                    "scores": {"score": round(float(0.3 + 0.7 * rng.random()), 2)},
                    "domain": "pixel",
                },
                {
                    "position": {"minX": 50, "maxX": 90, "minY": 30, "maxY": 60},
                    "class_id": (index + 1) % 3,
                    "scores": {"score": round(float(0.1 + 0.4 * rng.random()), 2)},
                    "domain": "pixel",
                },
            ],
            "class_labels": {0: "cat", 1: "dog", 2: "bird"},
        }
    }
    return waddle.Image(pixels, caption=f"sample {index}", boxes=boxes)


def _tone(frequency: float) -> np.ndarray:
    t = np.arange(4000) / 8000
    return (0.3 * np.sin(2 * math.pi * frequency * t)).astype(np.float32)


def _frames(progress: float) -> np.ndarray:
    frames = np.zeros((8, 32, 32, 3), dtype=np.uint8)
    for i in range(8):
        frames[i, :, (i * 4) : (i * 4 + 4), 0] = 255
        frames[i, : int(32 * progress) or 1, :, 1] = 120
    return frames


def _finish_rich(run: waddle.Run) -> None:
    run.alert("accuracy plateau", "val/accuracy rose less than 0.1% in the last epoch", "WARN")
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = Path(folder) / "model.json"
        checkpoint.write_text('{"weights": [0.1, 0.2, 0.3]}\n')
        run.save(checkpoint)
        model = waddle.Artifact("demo-model", type="model", metadata={"steps": run.step})
        model.add_file(str(checkpoint))
        run.log_artifact(model, aliases=["best"])
        run.flush()


def train_live(
    dir: str | None = None, project: str = "demo", seconds: float = 180.0, interval: float = 0.2
) -> waddle.Run:
    """A run that logs a step every ``interval`` seconds for ``seconds``, then finishes."""
    rng = random.Random()
    settings = waddle.Settings(system_metrics_interval=2, console=False)
    config = {"lr": 1e-3, "batch_size": 128, "optimizer": "sgd", "epochs": 10}
    with waddle.init(
        project=project,
        dir=dir,
        config=config,
        tags=["demo", "live"],
        name="demo-live",
        settings=settings,
    ) as run:
        deadline = time.monotonic() + seconds
        step = 0
        while time.monotonic() < deadline:
            loss = 2.0 / (1 + step / 50) + 0.05 + rng.gauss(0, 0.04)
            run.log({"train/loss": loss, "train/lr": config["lr"], "val/accuracy": 1 - loss / 2.2})
            step += 1
            time.sleep(interval)
    return run

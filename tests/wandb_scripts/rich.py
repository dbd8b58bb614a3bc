"""Every kind of value a W&B offline run keeps, for `waddle import wandb` (tests/test_wandb_import.py):
non-finite numbers, audio, video, an image with boxes, a table, a point cloud, a histogram, the
preset charts, explicit steps with a summarised metric, a saved file, console output, an alert
and an explicit summary. Audio and video are given as files (W&B needs soundfile and moviepy to
encode arrays), and the ROC and PR curves are left out (W&B needs scikit-learn for them)."""

import wave

import numpy as np
import wandb
from PIL import Image as PILImage

run = wandb.init(
    project="rich",
    name="rich-run",
    config={"lr": 0.1},
    tags=["a", "b"],
    notes="some notes",
    group="g",
    job_type="train",
)
print("hello from stdout")
with open("notes.txt", "w") as file:
    file.write("saved file\n")
run.save("notes.txt", policy="now")

frames = [PILImage.fromarray(np.full((8, 8, 3), i * 40, np.uint8)) for i in range(3)]
frames[0].save("clip.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
with wave.open("tone.wav", "wb") as sound:
    sound.setnchannels(1)
    sound.setsampwidth(2)
    sound.setframerate(8000)
    sound.writeframes((np.sin(np.linspace(0, 100, 8000)) * 3000).astype("<i2").tobytes())
pixels = (np.arange(16 * 16 * 3) % 256).astype(np.uint8).reshape(16, 16, 3)
box = {
    "position": {"minX": 1, "maxX": 8, "minY": 2, "maxY": 9},
    "domain": "pixel",
    "class_id": 1,
    "box_caption": "cat",
    "scores": {"conf": 0.9},
}
run.log(
    {
        "nan": float("nan"),
        "inf": float("inf"),
        "ninf": -float("inf"),
        "audio": wandb.Audio("tone.wav", caption="tone"),
        "video": wandb.Video("clip.gif", caption="clip"),
        "boxed": wandb.Image(
            pixels, boxes={"predictions": {"box_data": [box], "class_labels": {1: "cat"}}}
        ),
        "table": wandb.Table(columns=["id", "score"], data=[[1, 0.5], [2, float("nan")]]),
        "cloud": wandb.Object3D(np.random.default_rng(0).normal(size=(10, 3))),
        "hist": wandb.Histogram(np_histogram=([1, 2, 3], [0, 1, 2, 3])),
    }
)
table = wandb.Table(columns=["x", "y", "c"], data=[[i, i * i, "ab"[i % 2]] for i in range(6)])
run.log(
    {
        "line": wandb.plot.line(table, "x", "y", title="line"),
        "scatter": wandb.plot.scatter(table, "x", "y", title="scatter"),
        "bar": wandb.plot.bar(table, "c", "y", title="bar"),
        "histo": wandb.plot.histogram(table, "y", title="histo"),
        "series": wandb.plot.line_series(
            xs=[0, 1, 2], ys=[[1, 2, 3], [3, 2, 1]], keys=["up", "down"], title="series", xname="t"
        ),
        "cm": wandb.plot.confusion_matrix(
            y_true=[0, 1, 1, 0], preds=[0, 1, 0, 0], class_names=["neg", "pos"]
        ),
    }
)
run.define_metric("acc", summary="max")
for i in range(3):
    run.log({"acc": i / 10}, step=5 + i)
run.summary["best"] = "x"
run.alert(title="done", text="all logged")
run.finish()

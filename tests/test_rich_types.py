"""Rich data types: every type round-trips through the event log and its media files, and bad
input raises at the log() call with nothing of that call written."""

from __future__ import annotations

import hashlib
import io
import math
import os
import sys
import threading
import wave
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

import waddle
from tests.conftest import events_of, wait_until
from waddle import files, media
from waddle.table import read_table


def logs(run) -> list[dict]:
    return [event for event in events_of(run.dir) if event["type"] == "log"]


def logged(run, key: str) -> list[dict]:
    """Every value logged under ``key``, after the run has finished."""
    return [event["data"][key] for event in logs(run) if key in event["data"]]


def one(run, key: str) -> dict:
    values = logged(run, key)
    assert len(values) == 1, values
    return values[0]


def media_file(run, value: dict) -> Path:
    path = run.dir / value["path"]
    assert path.resolve().is_relative_to(run.dir.resolve())
    data = path.read_bytes()
    assert len(data) == value["bytes"]
    assert hashlib.sha256(data).hexdigest() == value["sha256"]
    assert path.name.startswith(value["sha256"])
    return path


def pixels(path: Path) -> np.ndarray:
    with PILImage.open(path) as picture:
        return np.asarray(picture)


def media_names(run) -> list[str]:
    folder = run.dir / "media"
    return sorted(os.listdir(folder)) if folder.exists() else []


RNG = np.random.default_rng(7)
RGB = RNG.integers(0, 256, (24, 32, 3), dtype=np.uint8)


# ---- images --------------------------------------------------------------------------


def test_uint8_hwc_image_round_trips_pixel_for_pixel_with_its_step_and_scalars(new_run):
    run = new_run()
    run.log({"loss": 0.5})
    run.log({"loss": 0.25, "sample": waddle.Image(RGB, caption="a cat")})
    run.finish()
    event = logs(run)[1]
    assert event["step"] == 1 and event["data"]["loss"] == 0.25
    value = event["data"]["sample"]
    assert value["_type"] == "image" and value["mime"] == "image/png"
    assert (value["width"], value["height"], value["caption"]) == (32, 24, "a cat")
    assert value["path"].startswith("media/") and value["path"].endswith(".png")
    assert "boxes" not in value
    assert np.array_equal(pixels(media_file(run, value)), RGB)


def test_float_chw_and_grayscale_images_are_converted_to_8_bit(new_run):
    run = new_run()
    chw = RNG.random((3, 10, 12)).astype(np.float32)
    gray = RNG.integers(0, 256, (5, 7), dtype=np.uint8)
    mask = RNG.random((6, 6, 1)) > 0.5
    run.log({"chw": waddle.Image(chw), "gray": waddle.Image(gray), "mask": waddle.Image(mask)})
    run.finish()
    got = pixels(media_file(run, one(run, "chw")))
    assert got.shape == (10, 12, 3)
    assert np.array_equal(got, np.rint(np.moveaxis(chw, 0, -1) * 255).astype(np.uint8))
    assert np.array_equal(pixels(media_file(run, one(run, "gray"))), gray)
    assert np.array_equal(pixels(media_file(run, one(run, "mask"))) > 0, mask[:, :, 0])


def test_the_logged_image_is_what_it_was_at_log_time(new_run):
    run = new_run()
    array = RGB.copy()
    picture = PILImage.fromarray(RGB)
    run.log({"array": waddle.Image(array), "pil": waddle.Image(picture)})
    array[:] = 0  # the training loop reuses its buffers right after log()
    picture.paste((0, 0, 0), (0, 0, 32, 24))
    run.finish()
    assert np.array_equal(pixels(media_file(run, one(run, "array"))), RGB)
    assert np.array_equal(pixels(media_file(run, one(run, "pil"))), RGB)


def test_a_jpeg_file_is_kept_as_jpeg_and_a_bmp_file_becomes_png(new_run, tmp_path):
    jpeg, bmp = tmp_path / "photo.jpg", tmp_path / "scan.bmp"
    PILImage.fromarray(RGB).save(jpeg, quality=90)
    PILImage.fromarray(RGB).save(bmp)
    run = new_run()
    run.log({"jpeg": waddle.Image(str(jpeg)), "bmp": waddle.Image(bmp)})
    run.finish()
    value = one(run, "jpeg")
    assert value["mime"] == "image/jpeg" and value["path"].endswith(".jpeg")
    assert media_file(run, value).read_bytes() == jpeg.read_bytes()
    value = one(run, "bmp")
    assert value["mime"] == "image/png"
    assert np.array_equal(pixels(media_file(run, value)), RGB)


def test_the_same_image_logged_twice_is_stored_once(new_run):
    run = new_run()
    run.log({"a": waddle.Image(RGB)})
    run.log({"a": waddle.Image(RGB.copy()), "b": waddle.Image(RGB)})
    run.log({"c": waddle.Image(255 - RGB)})
    run.finish()
    paths = {value["path"] for key in "abc" for value in logged(run, key)}
    assert len(paths) == 2
    assert media_names(run) == sorted(Path(path).name for path in paths)  # no temp files left


def test_wandb_boxes_relative_and_pixel_are_stored_in_pixels(new_run):
    run = new_run()
    boxes = {
        "predictions": {
            "box_data": [
                {
                    "position": {"minX": 0.25, "maxX": 0.5, "minY": 0.0, "maxY": 1.0},
                    "class_id": 1,
                    "box_caption": "cat 0.9",
                    "scores": {"conf": 0.9},
                },
                {
                    "position": {"middle": [16, 12], "width": 8, "height": 4},
                    "domain": "pixel",
                    "class_id": 2,
                },
            ],
            "class_labels": {1: "cat", 2: "dog"},
        }
    }
    run.log({"det": waddle.Image(RGB, boxes=boxes)})
    run.finish()
    assert one(run, "det")["boxes"] == [
        {
            "group": "predictions",
            "x_min": 8.0,
            "y_min": 0.0,
            "x_max": 16.0,
            "y_max": 24.0,
            "class_id": 1,
            "label": "cat",
            "caption": "cat 0.9",
            "scores": {"conf": 0.9},
        },
        {
            "group": "predictions",
            "x_min": 12.0,
            "y_min": 10.0,
            "x_max": 20.0,
            "y_max": 14.0,
            "class_id": 2,
            "label": "dog",
            "caption": None,
            "scores": {},
        },
    ]


def test_list_boxes_in_pixels_or_relative_share_the_stored_shape(new_run):
    run = new_run()
    boxes = [
        {"x_min": 1, "y_min": 2, "x_max": 10, "y_max": 20, "label": "bird", "score": 0.4},
        {"x_min": 0.5, "y_min": 0.5, "x_max": 1.0, "y_max": 1.0, "domain": "relative"},
    ]
    run.log({"det": waddle.Image(RGB, boxes=boxes)})
    run.finish()
    first, second = one(run, "det")["boxes"]
    assert first == {
        "group": "boxes",
        "x_min": 1.0,
        "y_min": 2.0,
        "x_max": 10.0,
        "y_max": 20.0,
        "class_id": None,
        "label": "bird",
        "caption": None,
        "scores": {"score": 0.4},
    }
    assert (second["x_min"], second["y_min"], second["x_max"], second["y_max"]) == (
        16.0,
        12.0,
        32.0,
        24.0,
    )
    assert second["label"] is None and second["scores"] == {}


def test_lavd_boxes_with_classes_and_a_threshold_keep_every_box(new_run):
    """lavd's form, as its README logs them: corners in pixels, a class and a probability."""
    run = new_run()
    boxes = [
        {
            "xStart": 10,
            "yStart": 2,
            "xEnd": 15,
            "yEnd": 20,
            "className": "bird",
            "probability": 0.4,
        },
        {"xStart": 20, "yStart": 2, "xEnd": 23, "yEnd": 8},  # no class, no probability
        {"xStart": 0, "yStart": 0, "xEnd": 5, "yEnd": 5, "className": "cat", "probability": 0.1},
    ]
    classes = ["bird", "orange", "background"]
    run.log({"det": waddle.Image(RGB, boxes=boxes, classes=classes, threshold=0.2)})
    run.finish()
    value = one(run, "det")
    assert value["classes"] == classes and value["threshold"] == 0.2
    first, second, third = value["boxes"]
    assert first == {
        "group": "boxes",
        "x_min": 10.0,
        "y_min": 2.0,
        "x_max": 15.0,
        "y_max": 20.0,
        "class_id": 0,
        "label": "bird",
        "caption": None,
        "scores": {"score": 0.4},
    }
    assert second["label"] is None and second["class_id"] is None and second["scores"] == {}
    # Below the threshold and of a class not in the list: kept, for the dashboard to hide.
    assert (third["label"], third["class_id"], third["scores"]) == ("cat", None, {"score": 0.1})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"boxes": [{"xStart": 0, "yStart": 0, "xEnd": 5}]}, "box 0 is missing yEnd"),
        ({"boxes": [{"xStart": 0, "yStart": 0, "xEnd": 50, "yEnd": 5}]}, "outside the 32×24"),
        ({"classes": "bird"}, "classes must be a list of class names"),
        ({"threshold": "high"}, "threshold must be a number"),
    ],
)
def test_lavd_boxes_that_cannot_be_drawn_raise(kwargs, message):
    with pytest.raises((TypeError, ValueError), match=message):
        waddle.Image(RGB, **kwargs)


# ---- audio and video ------------------------------------------------------------------


def test_audio_samples_round_trip_through_wav(new_run):
    run = new_run()
    stereo = np.stack([np.sin(np.linspace(0, 60, 4000)), np.linspace(-1, 1, 4000)], axis=1)
    run.log({"speech": waddle.Audio(stereo, sample_rate=8000, caption="hello")})
    run.finish()
    value = one(run, "speech")
    assert value["_type"] == "audio" and value["mime"] == "audio/wav"
    assert (value["sample_rate"], value["channels"], value["duration"], value["caption"]) == (
        8000,
        2,
        0.5,
        "hello",
    )
    with wave.open(str(media_file(run, value)), "rb") as reader:
        assert (reader.getframerate(), reader.getnchannels(), reader.getsampwidth()) == (8000, 2, 2)
        samples = np.frombuffer(reader.readframes(reader.getnframes()), "<i2").reshape(-1, 2)
    assert samples.shape == (4000, 2)
    assert np.abs(samples / 32767 - stereo).max() < 1e-4


def test_audio_and_video_files_are_copied_as_they_are(new_run, tmp_path):
    sound, clip = tmp_path / "a.wav", tmp_path / "clip.mp4"
    with wave.open(str(sound), "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(16000)
        writer.writeframes(np.arange(1600, dtype="<i2").tobytes())
    clip.write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video")
    run = new_run()
    run.log({"sound": waddle.Audio(sound), "clip": waddle.Video(str(clip), fps=10)})
    run.finish()
    value = one(run, "sound")
    assert media_file(run, value).read_bytes() == sound.read_bytes()
    assert (value["sample_rate"], value["duration"], value["path"][-4:]) == (16000, 0.1, ".wav")
    value = one(run, "clip")
    assert media_file(run, value).read_bytes() == clip.read_bytes()
    assert value["mime"] == "video/mp4" and value["path"].endswith(".mp4")


@pytest.mark.parametrize("layout", ["THWC", "TCHW"])
def test_video_frames_become_an_animated_gif(new_run, layout):
    frames = np.zeros((6, 16, 20, 3), dtype=np.uint8)
    for index in range(6):
        frames[index, :, : 3 * (index + 1)] = (255, 40 * index, 0)  # every frame differs
    data = frames if layout == "THWC" else np.moveaxis(frames, -1, 1)
    run = new_run()
    run.log({"rollout": waddle.Video(data, fps=5, caption="episode 1")})
    run.finish()
    value = one(run, "rollout")
    assert value["mime"] == "image/gif"
    assert (value["frames"], value["width"], value["height"], value["fps"]) == (6, 20, 16, 5.0)
    with PILImage.open(media_file(run, value)) as gif:
        assert gif.format == "GIF" and gif.n_frames == 6 and gif.size == (20, 16)
        assert gif.info["duration"] == 200 and gif.info["loop"] == 0
        gif.seek(5)
        last = np.asarray(gif.convert("RGB"))
    assert np.array_equal(last[0, :18], np.tile([255, 200, 0], (18, 1)))
    assert np.array_equal(last[0, 18:], np.zeros((2, 3)))


# ---- tables ---------------------------------------------------------------------------


def test_table_cells_round_trip_with_media_references_and_non_finite_floats(new_run):
    run = new_run()
    table = waddle.Table(columns=["id", "score", "ok", "note", "image"])
    table.add_data(1, 0.5, True, "first", waddle.Image(RGB))
    table.add_data(np.int64(2), float("nan"), False, None, None)
    table.add_data(3, -math.inf, np.bool_(True), "third", waddle.Image(RGB))
    run.log({"preds": table, "epoch": 1})
    table.add_data(4, 1.0, True, "added after log", None)
    run.finish()
    value = one(run, "preds")
    assert value["_type"] == "table" and value["rows"] == 3
    assert value["columns"] == ["id", "score", "ok", "note", "image"]
    assert value["path"].startswith("media/") and value["path"].endswith(".table.json")
    media_file(run, value)
    stored = read_table(run.dir, value)
    assert stored["columns"] == value["columns"]
    rows = stored["data"]
    assert [row[0] for row in rows] == [1, 2, 3]
    assert rows[0][1:4] == [0.5, True, "first"] and rows[2][1] == -math.inf
    assert math.isnan(rows[1][1]) and rows[1][3:] == [None, None]
    image_cell = rows[0][4]
    assert image_cell["_type"] == "image" and image_cell == rows[2][4]
    assert np.array_equal(pixels(media_file(run, image_cell)), RGB)
    assert len(media_names(run)) == 2  # the table and one image: the second cell is deduplicated


def test_table_from_rows_and_from_a_dataframe(new_run):
    pandas = pytest.importorskip("pandas")
    run = new_run()
    run.log({"rows": waddle.Table(columns=["a", "b"], data=[[1, "x"], [2, "y"]])})
    run.log({"frame": waddle.Table(dataframe=pandas.DataFrame({"a": [1, 2], "b": ["x", "y"]}))})
    run.finish()
    rows = read_table(run.dir, one(run, "rows"))
    assert rows["columns"] == ["a", "b"] and rows["data"] == [[1, "x"], [2, "y"]]
    assert read_table(run.dir, one(run, "frame")) == rows


# ---- histograms -----------------------------------------------------------------------


def test_histogram_bins_and_stats_with_non_finite_values_counted_apart(new_run):
    values = np.concatenate(
        [RNG.normal(size=10_000).astype(np.float32), [np.nan, np.nan, np.inf, -np.inf, -np.inf]]
    )
    finite = values[np.isfinite(values)].astype(np.float64)
    run = new_run()
    run.log({"acts": waddle.Histogram(values, num_bins=32), "loss": 1.0})
    values[:] = 0  # the caller's buffer changes right after log()
    run.finish()
    value = one(run, "acts")
    assert value["_type"] == "histogram"
    assert len(value["counts"]) == 32 and len(value["bins"]) == 33
    assert sum(value["counts"]) == value["count"] == 10_000
    assert (value["nan"], value["posinf"], value["neginf"]) == (2, 1, 2)
    assert value["bins"][0] == value["min"] and value["bins"][-1] == value["max"]
    assert (value["min"], value["max"]) == (finite.min(), finite.max())
    assert value["mean"] == pytest.approx(finite.mean()) and value["std"] == pytest.approx(
        finite.std()
    )
    assert value["counts"] == np.histogram(finite.astype(np.float32), bins=32)[0].tolist()


def test_histogram_counts_match_numpy_for_integers_and_precomputed_bins(new_run):
    data = np.arange(100)
    counts, edges = np.histogram(RNG.random(50), bins=5)
    run = new_run()
    run.log({"ints": waddle.Histogram(data, num_bins=10)})
    run.log({"pre": waddle.Histogram(np_histogram=(counts, edges))})
    run.log({"list": waddle.Histogram([1.0, 2.0, 2.0, 3.0], num_bins=2)})
    run.finish()
    value = one(run, "ints")
    assert value["counts"] == [10] * 10 and value["count"] == 100
    assert (value["min"], value["max"], value["mean"]) == (0, 99, 49.5)
    value = one(run, "pre")
    assert value["counts"] == counts.tolist() and value["bins"] == edges.tolist()
    assert value["count"] == 50 and value["mean"] is None
    assert one(run, "list")["counts"] == [1, 3]


# ---- text, markdown -------------------------------------------------------------------


def test_text_and_markdown_are_inline(new_run):
    run = new_run()
    run.log({"out": waddle.Text("Hallo Welt", expected="hello world")})
    run.log({"report": waddle.Markdown("# Results\n\n*good*"), "plain": waddle.Text("x")})
    run.finish()
    assert one(run, "out") == {"_type": "text", "text": "Hallo Welt", "expected": "hello world"}
    assert one(run, "plain") == {"_type": "text", "text": "x", "expected": None}
    assert one(run, "report") == {"_type": "markdown", "text": "# Results\n\n*good*"}


# ---- run.save ---------------------------------------------------------------------------


def test_save_copies_a_file_by_content_and_records_a_file_event(new_run, tmp_path):
    checkpoint = tmp_path / "model.pt"
    checkpoint.write_bytes(b"weights v1")
    run = new_run()
    run.log({"loss": 1.0})
    run.save(checkpoint)
    waddle.save(str(checkpoint), name="checkpoints/best.pt")
    run.finish()
    checkpoint.write_bytes(b"weights v2")  # rewriting the original changes nothing saved
    saved = [event for event in events_of(run.dir) if event["type"] == "file"]
    assert [event["name"] for event in saved] == ["model.pt", "checkpoints/best.pt"]
    assert saved[0]["path"] == saved[1]["path"] and saved[0]["path"].startswith("files/")
    assert saved[0]["step"] == 1
    path = run.dir / saved[0]["path"]
    assert path.read_bytes() == b"weights v1" and saved[0]["bytes"] == 10
    assert saved[0]["sha256"] == hashlib.sha256(b"weights v1").hexdigest()
    assert os.listdir(run.dir / "files") == [path.name]


def test_save_with_link_hard_links_on_the_same_file_system(new_run, tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("lr: 0.1\n")
    run = new_run()
    run.save(config, link=True)
    run.finish()
    (event,) = [event for event in events_of(run.dir) if event["type"] == "file"]
    assert os.path.samefile(run.dir / event["path"], config)


def test_a_slow_save_holds_back_no_event_logged_after_it(new_run, tmp_path, monkeypatch):
    # A checkpoint of many gigabytes takes minutes to copy: meanwhile what the loop logs
    # (and the heartbeats) must still reach disk, and the file event comes once it is copied.
    release = threading.Event()
    store_file = media.store_file

    def slow_store_file(*args, **kwargs):
        release.wait(30)
        return store_file(*args, **kwargs)

    monkeypatch.setattr(media, "store_file", slow_store_file)
    checkpoint = tmp_path / "ckpt.pt"
    checkpoint.write_bytes(b"weights")
    run = new_run()
    run.save(checkpoint)
    run.log({"loss": 0.5})
    try:
        wait_until(lambda: any(event["type"] == "log" for event in events_of(run.dir)))
        assert not [event for event in events_of(run.dir) if event["type"] == "file"]
    finally:
        release.set()
    run.finish()
    (saved,) = [event for event in events_of(run.dir) if event["type"] == "file"]
    assert (run.dir / saved["path"]).read_bytes() == b"weights"


def test_a_file_changed_before_the_copier_copies_it_is_not_recorded(tmp_path):
    source = tmp_path / "ckpt.pt"
    source.write_bytes(b"old")
    store = files.snapshot(source, None, step=0)
    source.write_bytes(b"new contents")
    with pytest.raises(RuntimeError, match="changed before it was copied"):
        store(tmp_path / "run")


def test_disabled_runs_accept_rich_values_and_save(tmp_path):
    run = waddle.init(project="p", dir=tmp_path, mode="disabled")
    run.log({"img": waddle.Image(RGB)})
    run.save(tmp_path / "missing-is-fine-when-disabled")
    run.finish()
    assert not (tmp_path / "p").exists()


# ---- bad input: a clear error at log(), nothing of the call written ---------------------

BAD_INPUT = [
    ("4-D image", lambda p: waddle.Image(np.zeros((2, 4, 4, 3))), "4-D array"),
    ("complex image", lambda p: waddle.Image(np.zeros((4, 4), complex)), "complex"),
    ("empty image", lambda p: waddle.Image(np.zeros((0, 4, 3))), "empty"),
    ("two channels", lambda p: waddle.Image(np.zeros((5, 5, 2))), "channels"),
    ("float image > 1", lambda p: waddle.Image(np.full((4, 4), 2.0)), r"\[0, 1\]"),
    ("NaN image", lambda p: waddle.Image(np.full((4, 4), np.nan)), "NaN"),
    ("int image > 255", lambda p: waddle.Image(np.full((4, 4), 300)), "0..255"),
    ("strings", lambda p: waddle.Image(np.array([["a"]])), "real numbers"),
    ("missing image", lambda p: waddle.Image(p / "nope.png"), "no such file"),
    ("not an image", lambda p: waddle.Image(p / "notes.txt"), "not an image file"),
    (
        "box outside",
        lambda p: waddle.Image(RGB, boxes=[{"x_min": 0, "y_min": 0, "x_max": 40, "y_max": 5}]),
        "outside the 32×24 image",
    ),
    (
        "relative box outside",
        lambda p: waddle.Image(
            RGB,
            boxes={
                "p": {
                    "box_data": [{"position": {"middle": [0.9, 0.5], "width": 0.4, "height": 0.1}}]
                }
            },
        ),
        "outside",
    ),
    (
        "inverted box",
        lambda p: waddle.Image(RGB, boxes=[{"x_min": 9, "y_min": 0, "x_max": 2, "y_max": 5}]),
        "inverted",
    ),
    (
        "box without position",
        lambda p: waddle.Image(RGB, boxes={"p": {"box_data": [{"class_id": 1}]}}),
        "position",
    ),
    ("caption", lambda p: waddle.Image(RGB, caption=3), "caption must be a string"),
    ("audio 3-D", lambda p: waddle.Audio(np.zeros((4, 4, 4)), 8000), "not audio"),
    ("audio loud", lambda p: waddle.Audio(np.full(10, 3.0), 8000), r"\[-1, 1\]"),
    ("audio channels first", lambda p: waddle.Audio(np.zeros((2, 800)), 8000), "data.T"),
    ("audio no rate", lambda p: waddle.Audio(np.zeros(10)), "sample_rate"),
    ("audio bad rate", lambda p: waddle.Audio(np.zeros(10), -5), "sample_rate"),
    ("audio missing", lambda p: waddle.Audio(p / "a.wav"), "no such file"),
    ("audio format", lambda p: waddle.Audio(p / "notes.txt"), "not a format browsers play"),
    ("video 3-D", lambda p: waddle.Video(np.zeros((4, 4, 3))), "waddle.Image"),
    ("video fps", lambda p: waddle.Video(np.zeros((2, 4, 4, 3)), fps=0), "fps"),
    ("video missing", lambda p: waddle.Video(p / "v.mp4"), "no such file"),
    ("histogram all NaN", lambda p: waddle.Histogram(np.full(5, np.nan)), "nothing to bin"),
    ("histogram empty", lambda p: waddle.Histogram(np.array([])), "empty"),
    ("histogram complex", lambda p: waddle.Histogram(np.ones(3, complex)), "complex"),
    ("histogram bins", lambda p: waddle.Histogram(np.ones(3), num_bins=513), "1..512"),
    (
        "histogram edges",
        lambda p: waddle.Histogram(np_histogram=([1, 2], [0, 1])),
        "n \\+ 1 edges",
    ),
    ("table row", lambda p: waddle.Table(columns=["a", "b"], data=[[1, 2], [3]]), "row 1 has 1"),
    ("table cell", lambda p: waddle.Table(columns=["a"], data=[[[1, 2]]]), "column 'a'"),
    ("table columns", lambda p: waddle.Table(columns=["a", "a"]), "twice"),
    ("text", lambda p: waddle.Text(b"bytes"), "must be a string"),
]


@pytest.mark.parametrize(
    ("make", "message"), [case[1:] for case in BAD_INPUT], ids=[case[0] for case in BAD_INPUT]
)
def test_bad_input_raises_clearly_and_nothing_of_the_call_is_written(
    new_run, tmp_path, make, message
):
    (tmp_path / "notes.txt").write_text("not media")
    run = new_run()
    run.log({"before": 1.0})
    with pytest.raises((TypeError, ValueError, FileNotFoundError), match=message):
        run.log({"loss": 2.0, "bad": make(tmp_path)})
    run.log({"after": 3.0})
    run.finish()
    assert [event["data"] for event in logs(run)] == [{"before": 1.0}, {"after": 3.0}]
    assert [event["step"] for event in logs(run)] == [0, 1]
    assert media_names(run) == []


def test_a_bad_table_row_added_later_raises_at_add_data():
    table = waddle.Table(columns=["a", "b"])
    with pytest.raises(ValueError, match=r"row 0 has 3 cells but the table has 2 columns \(a, b\)"):
        table.add_data(1, 2, 3)
    assert len(table) == 0


def test_a_valid_image_in_a_call_that_fails_elsewhere_is_not_stored(new_run):
    run = new_run()
    with pytest.raises(TypeError, match="'bad'"):
        run.log({"img": waddle.Image(RGB), "bad": object()})
    run.finish()
    assert logs(run) == [] and media_names(run) == []


def test_save_of_a_missing_file_raises_at_the_call(new_run, tmp_path):
    run = new_run()
    with pytest.raises(FileNotFoundError, match="no such file"):
        run.save(tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="not a regular file"):
        run.save(tmp_path)
    run.finish()
    assert [event for event in events_of(run.dir) if event["type"] == "file"] == []


def test_without_pillow_images_name_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL", None)
    monkeypatch.setitem(sys.modules, "PIL.Image", None)
    with pytest.raises(ImportError, match=r"pip install -e '.\[media\]'"):
        waddle.Image(RGB)
    with pytest.raises(ImportError, match=r"pip install -e '.\[media\]'"):
        waddle.Video(np.zeros((2, 4, 4, 3), np.uint8))
    waddle.Histogram([1.0])  # needs numpy only
    waddle.Audio(np.zeros(10), 8000)


# ---- torch, when installed --------------------------------------------------------------


def test_torch_tensors_are_cloned_at_log_time_and_converted_in_the_writer(new_run):
    torch = pytest.importorskip("torch")
    run = new_run()
    image = torch.from_numpy(np.moveaxis(RGB, -1, 0).copy()).float() / 255
    values = torch.arange(10, dtype=torch.float32)
    run.log({"img": waddle.Image(image), "hist": waddle.Histogram(values, num_bins=5)})
    image.zero_()
    values.zero_()
    run.finish()
    assert np.array_equal(pixels(media_file(run, one(run, "img"))), RGB)
    assert one(run, "hist")["counts"] == [2, 2, 2, 2, 2]


def test_pil_image_helper_reads_what_pillow_wrote():
    # Guards the test helper itself: a PNG written by Pillow decodes to the same array.
    buffer = io.BytesIO()
    PILImage.fromarray(RGB).save(buffer, format="PNG")
    buffer.seek(0)
    with PILImage.open(buffer) as picture:
        assert np.array_equal(np.asarray(picture), RGB)


def test_a_list_of_images_under_one_key_keeps_every_image_in_order(new_run):
    run = new_run()
    first = np.zeros((4, 4, 3), dtype=np.uint8)
    second = np.full((4, 4, 3), 200, dtype=np.uint8)
    run.log(
        {
            "examples": [waddle.Image(first, caption="a"), waddle.Image(second, caption="b")],
            "loss": 1.0,
        }
    )
    run.finish()
    value = one(run, "examples")
    assert value["_type"] == "list"
    assert [item["caption"] for item in value["items"]] == ["a", "b"]
    assert (pixels(media_file(run, value["items"][1])) == second).all()


def test_a_list_mixing_media_and_numbers_is_refused(new_run):
    run = new_run()
    with pytest.raises(TypeError, match=r"'examples' holds a waddle\.image\.Image at position 0"):
        run.log({"examples": [waddle.Image(np.zeros((2, 2), dtype=np.uint8)), 3]})
    run.finish()
    assert logs(run) == []


def test_large_histograms_reusing_copy_buffers_each_keep_their_own_values(new_run):
    run = new_run()
    arrays = [RNG.normal(loc=index * 10, size=300_000).astype(np.float32) for index in range(4)]
    kept = waddle.Histogram(arrays[0], num_bins=8)
    for array in arrays:
        run.log({"h": waddle.Histogram(array, num_bins=8)})
        run.flush()  # binned: its copy buffer goes back for the next histogram
        array[:] = 0  # the caller reuses its array: nothing logged may change
    run.log({"h": kept})  # the same object logged twice is binned once
    run.log({"h": kept})
    run.finish()
    mins = [value["min"] for value in logged(run, "h")]
    assert len(mins) == 6
    assert mins[4] == mins[5] == mins[0]
    assert all(
        mins[index] > mins[index - 1] + 5 for index in range(1, 4)
    )  # four different histograms
    assert all(sum(value["counts"]) == 300_000 for value in logged(run, "h"))

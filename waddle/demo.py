"""A small simulated training job: what ``waddle demo`` runs, and a template for real scripts."""

from __future__ import annotations

import math
import random

import waddle


def train(
    dir: str | None = None, project: str = "demo", steps: int = 300, seed: int = 0
) -> waddle.Run:
    rng = random.Random(seed)
    config = {"lr": 3e-4, "batch_size": 64, "optimizer": "adam", "epochs": max(1, steps // 100)}
    with waddle.init(
        project=project, dir=dir, config=config, tags=["demo"], notes="simulated training"
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
            run.log(values)
        run.summary["final_accuracy"] = accuracy
    return run

"""Using artifacts as W&B's docs show it, after artifacts.py: a training run uses the dataset
by its alias and downloads it, uses the model, and logs it again as the best one. With waddle
only: W&B's offline mode refuses use_artifact ("Cannot use artifact when in offline mode")."""

import os

import wandb

run = wandb.init(project="artifacts", job_type="train")
dataset = run.use_artifact("mnist:raw", type="dataset")
folder = dataset.download()
with open(os.path.join(folder, "labels.csv")) as file:
    labels = file.read().splitlines()[1:]
run.log({"images": len(os.listdir(os.path.join(folder, "images"))), "labels": len(labels)})
model = run.use_artifact("classifier:latest")
run.summary["model_bytes"] = model.get_entry("model.pt").size
best = wandb.Artifact("classifier", type="model")
best.add_file(os.path.join(model.download(), "model.pt"))
run.log_artifact(best, aliases=["best"])
run.finish()

api = wandb.Api()
print(api.artifact("artifacts/classifier:best").version, dataset.version)

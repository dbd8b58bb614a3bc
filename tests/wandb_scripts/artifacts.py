"""Artifacts as W&B's docs build and log them: a dataset from a folder, a new file and a
reference; a model logged from its path; the same dataset logged again under another alias.
W&B's offline mode logs artifacts but cannot use them (``use_artifact`` needs its server):
artifacts_use.py uses these with waddle."""

import os
import tempfile

import wandb

run = wandb.init(project="artifacts", job_type="dataset", config={"classes": 2})
folder = tempfile.mkdtemp()
os.makedirs(os.path.join(folder, "images"))
for index in range(3):
    with open(os.path.join(folder, "images", f"{index}.txt"), "w") as file:
        file.write("pixel " * (index + 1))


def dataset(description=None, metadata=None):
    artifact = wandb.Artifact("mnist", type="dataset", description=description, metadata=metadata)
    artifact.add_dir(folder)
    with artifact.new_file("labels.csv") as file:
        file.write("id,label\n0,cat\n1,dog\n2,cat\n")
    artifact.add_reference("s3://my-bucket/mnist/raw.tar.gz", checksum=False)
    return artifact


run.log_artifact(dataset("a toy MNIST", {"rows": 3, "source": "synthetic"}), aliases=["raw"])
for epoch in range(3):
    run.log({"loss": 1 / (epoch + 1), "epoch": epoch})
weights = os.path.join(tempfile.mkdtemp(), "model.pt")
with open(weights, "wb") as file:
    file.write(bytes(range(64)))
run.log_artifact(weights, name="classifier", type="model", aliases=["candidate"])
run.log_artifact(dataset(), aliases=["clean"])  # the same content: no new version
run.finish()

"""W&B's quickstart, as its docs show it."""

import random

import wandb

wandb.login()
run = wandb.init(
    project="quickstart",
    config={"learning_rate": 0.02, "architecture": "CNN", "dataset": "CIFAR-100", "epochs": 10},
)
random.seed(0)
offset = random.random() / 5
for epoch in range(2, run.config.epochs):
    acc = 1 - 2**-epoch - random.random() / epoch - offset
    loss = 2**-epoch + random.random() / epoch + offset
    wandb.log({"acc": acc, "loss": loss})
run.summary["best"] = "epoch 9"
wandb.finish()

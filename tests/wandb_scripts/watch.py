"""wandb.watch on a tiny torch model, as W&B's PyTorch guide shows it."""

import torch
import wandb

torch.manual_seed(0)
run = wandb.init(project="watch", config={"lr": 0.05})
model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
wandb.watch(model, log="all", log_freq=3)
optimizer = torch.optim.SGD(model.parameters(), lr=run.config.lr)
for _ in range(7):
    inputs = torch.randn(16, 4)
    loss = (model(inputs) - inputs.sum(dim=1, keepdim=True)).pow(2).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    wandb.log({"loss": loss.item()})
run.finish()

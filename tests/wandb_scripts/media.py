"""Media and charts as W&B's docs log them; W&B stores each its own way, so only the kinds
of values at each step are compared, and waddle's stored values are checked apart."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import wandb

run = wandb.init(project="media")
pixels = (np.arange(48 * 32 * 3) % 256).astype(np.uint8).reshape(32, 48, 3)
plt.plot([1, 2, 3], [3, 1, 2])
table = wandb.Table(columns=["x", "y"], data=[[i, i * i] for i in range(5)])
run.log(
    {
        "image": wandb.Image(pixels, caption="a gradient"),
        "figure": wandb.Image(plt),
        "page": wandb.Html("<p>report</p>"),
        "histogram": wandb.Histogram(np.arange(100.0)),
        "examples": [wandb.Image(pixels), wandb.Image(pixels[::2])],
    }
)
run.log({"curve": wandb.plot.line(table, "x", "y", title="squares")})
run.alert(title="done", text="media logged", level=wandb.AlertLevel.INFO)
run.finish()

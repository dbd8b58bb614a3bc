"""Values W&B takes: None, lists, arrays, booleans, strings, a table."""

import numpy as np
import wandb

run = wandb.init(project="values")
for step in range(3):
    run.log(
        {
            "none": None,
            "flag": step % 2 == 0,
            "label": f"step {step}",
            "short_list": [step, step + 1, step + 2],
            "array": np.arange(3.0) * step,
            "big_array": np.linspace(0, 1, 100) * step,
            "np_scalar": np.float32(step) / 2,
            "int": step * 10,
        }
    )
table = wandb.Table(columns=["a", "b"], data=[[1, "x"], [2, "y"]])
run.log({"table": table})
run.finish()

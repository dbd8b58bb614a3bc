"""define_metric, commit=False, explicit steps, nested dicts, summaries, config changes."""

import wandb

with wandb.init(project="metrics", config={"lr": 0.1, "layers": [64, 32]}) as run:
    run.define_metric("epoch")
    run.define_metric("val/*", step_metric="epoch", summary="max")
    run.define_metric("train/loss", summary="min")
    run.define_metric("quiet", summary="none")
    run.config.update({"batch_size": 32})
    run.config.optimizer = "adam"
    for step in range(12):
        run.log({"train/loss": 1.0 / (step + 1)}, commit=False)
        run.log({"quiet": step, "nested": {"a": step, "b": {"c": 2 * step}}})
        if step % 4 == 3:
            run.log({"epoch": step // 4, "val/acc": step / 12}, step=run.step)
    run.log({"late": 1.5}, step=20)
    run.log({"later": 2.5}, step=20)
    run.summary["note"] = "done"
    run.summary.update({"score": 0.75})

"""Supervised fine-tuning on rendered reasoning traces (SPEC §4) with TRL: `m1 train CONFIG`.

    from m1.config import load_config
    from m1.training import TrainConfig, run_training
    summary = run_training(load_config(TrainConfig, "configs/train/cpu_smoke.yaml", ["epochs=1"]))

`recipe` is the entry point and reads top to bottom; `config` the typed settings; `data` reads the
curated records; `lengths` the max-length policy; `templates` the training chat template and the
pad token; `probe` checks whether a model writes the m1 format by itself; `report` writes the loss
curve and the summary.
"""

from m1.training.config import TrainConfig
from m1.training.recipe import run_training

__all__ = ["TrainConfig", "run_training"]

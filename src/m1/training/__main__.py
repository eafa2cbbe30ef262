"""`python -m m1.training CONFIG [key=value ...]`: the recipe under `accelerate launch` or `torchrun`.

    accelerate launch --config_file configs/accelerate/fsdp_qwen2_8gpu.yaml -m m1.training \\
        configs/train/paper_7b_fsdp.yaml
    torchrun --nproc-per-node 8 -m m1.training configs/train/paper_7b_fsdp.yaml

Launchers start one process per GPU and run a module, so this entry point takes exactly what
`m1 train` takes.
"""

import sys

from m1.cli import app

if __name__ == "__main__":
    app(["train", *sys.argv[1:]], prog_name="m1")

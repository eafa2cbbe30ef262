"""Every shipped training preset loads, validates and builds its trainer arguments without a GPU.

The device bits are neutralised through the ordinary override mechanism (`use_cpu=true`, since
transformers refuses bf16 without a GPU otherwise); everything else is the preset as shipped,
built for the number of processes the preset was written for.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from rich.console import Console

from m1.config import load_config
from m1.data.errors import DataError
from m1.training.config import TrainConfig
from m1.training.recipe import check_launch

REPO = Path(__file__).resolve().parents[2]
PRESETS = sorted((REPO / "configs" / "train").glob("*.yaml"))
ACCELERATE = sorted((REPO / "configs" / "accelerate").glob("*.yaml"))


@pytest.mark.parametrize("preset", PRESETS, ids=[p.stem for p in PRESETS])
def test_every_preset_builds_its_trainer_arguments(preset: Path, tmp_path: Path) -> None:
    config = load_config(TrainConfig, preset, ["use_cpu=true"])
    world = config.launch.world_size
    args = config.sft_config(world_size=world, output_dir=str(tmp_path))
    assert args.per_device_train_batch_size * world * args.gradient_accumulation_steps == config.global_batch_size
    assert args.assistant_only_loss and args.max_length == config.max_length
    assert args.gradient_checkpointing == config.gradient_checkpointing
    text = preset.read_text()
    assert text.startswith("#") and "m1.training" in text.split("\n\n")[0]  # names the recipe
    assert "m1 train" in text or "-m m1.training" in text  # and the command that launches it
    if config.launch.accelerate_config:
        assert config.launch.accelerate_config in text  # the launch line uses the preset's own topology


@pytest.mark.parametrize("name", ["paper_7b_fsdp", "paper_32b_fsdp"])
def test_paper_presets_use_the_papers_hyperparameters(name: str) -> None:
    config = load_config(TrainConfig, REPO / "configs/train" / f"{name}.yaml")
    assert (config.learning_rate, config.lr_scheduler, config.warmup_ratio, config.epochs) == (1e-5, "cosine", 0.05, 5)
    assert (config.global_batch_size, config.per_device_batch_size) == (16, 1)
    assert (config.adam_beta1, config.adam_beta2, config.weight_decay) == (0.9, 0.95, 1e-4)
    assert config.bf16 and config.max_length == 32768 and config.lora is None
    assert config.model.startswith("Qwen/Qwen2.5-") and config.pad_token == "<|fim_pad|>"
    assert config.launch.world_size == (8 if "7b" in name else 16)
    accelerate = yaml.safe_load((REPO / config.launch.accelerate_config).read_text())
    fsdp = accelerate["fsdp_config"]
    assert accelerate["distributed_type"] == "FSDP" and accelerate["num_processes"] == config.launch.world_size
    assert fsdp["fsdp_reshard_after_forward"] is True and fsdp["fsdp_transformer_layer_cls_to_wrap"] == "Qwen2DecoderLayer"
    assert fsdp["fsdp_activation_checkpointing"] == ("32b" in name)  # the 32B run checkpoints activations


def test_gradient_accumulation_follows_the_launch() -> None:
    config = load_config(TrainConfig, REPO / "configs/train/paper_7b_fsdp.yaml")
    assert [config.gradient_accumulation(n) for n in (1, 8, 16)] == [16, 2, 1]
    with pytest.raises(ValueError, match="not a multiple"):
        config.gradient_accumulation(3)
    with pytest.raises(DataError, match="global_batch_size.*3 processes"):  # before any model is loaded
        check_launch(config, world_size=3, console=Console(quiet=True))


@pytest.mark.parametrize("path", ACCELERATE, ids=[p.stem for p in ACCELERATE])
def test_accelerate_configs_load_in_accelerate(path: Path) -> None:
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(path))
    assert config.num_processes in (8, 16) and config.mixed_precision == "bf16"
    assert path.read_text().startswith("#") and "accelerate launch" in path.read_text()


def test_torchrun_fsdp_overrides_validate(tmp_path: Path) -> None:
    """The README's torchrun line passes FSDP through trainer_args; transformers must accept it."""
    readme = (REPO / "README.md").read_text()
    override = readme[readme.index("'trainer_args={fsdp: true"):].split("'")[1].replace("\n    ", " ")
    config = load_config(TrainConfig, REPO / "configs/train/paper_32b_fsdp.yaml", ["use_cpu=true", override])
    args = config.sft_config(world_size=16, output_dir=str(tmp_path))
    assert args.fsdp and args.fsdp_config["transformer_layer_cls_to_wrap"] == ["Qwen2DecoderLayer"]
    assert args.fsdp_config["activation_checkpointing"] is True


def test_config_errors_name_the_key(tmp_path: Path) -> None:
    preset = REPO / "configs/train/cpu_smoke.yaml"
    with pytest.raises(DataError, match="unknown key 'learning_rte'"):
        load_config(TrainConfig, preset, ["learning_rte=1e-4"])
    with pytest.raises(DataError, match="trainer_args sets learning_rate"):
        load_config(TrainConfig, preset, ["trainer_args={learning_rate: 1.0}"])
    with pytest.raises(DataError, match="global_batch_size"):
        load_config(TrainConfig, preset, ["global_batch_size=5"])
    assert load_config(TrainConfig, preset, ["save_strategy=no"]).save_strategy == "no"  # YAML's `no` is false

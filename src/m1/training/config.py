"""What one SFT run is: model, data, length policy, optimisation, and how it is launched.

    config = load_config(TrainConfig, "configs/train/cpu_smoke.yaml", ["epochs=1", "lora.r=8"])
    args = config.sft_config(world_size=8)        # TRL's SFTConfig, gradient accumulation derived

The batch is given as the paper gives it, a global batch (16) and a per-device batch (1); the
gradient accumulation that keeps the global batch follows from the number of processes the job
was launched with, so one preset works on 8 GPUs, on 16, or (slowly) on one. Any other
`SFTConfig`/`TrainingArguments` field can be set through `trainer_args`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

LengthPolicy = Literal["drop", "truncate", "trim_reasoning"]

# SFTConfig fields that `TrainConfig.sft_config` derives from this config's own keys.
DERIVED_TRAINER_ARGS = {"assistant_only_loss", "truncation_mode", "lr_scheduler_type", "warmup_steps",
                        "num_train_epochs", "per_device_train_batch_size", "per_device_eval_batch_size",
                        "gradient_accumulation_steps", "data_seed", "include_num_input_tokens_seen"}


class DataSettings(BaseModel):
    """Where the SFT records are, and which of them are held out."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="a JSONL or Parquet file, a `datasets` folder, or a Hugging Face dataset id")
    split: str = Field("train", description="the split to read from a dataset folder or Hub id")
    held_out: float = Field(0.0, ge=0.0, description="records kept out of training for held-out loss: a fraction "
                                                     "(< 1) or a count (>= 1)")
    limit: int | None = Field(None, gt=0, description="train on at most this many records (a seeded sample)")


class LoraSettings(BaseModel):
    """LoRA adapters (peft) instead of full fine-tuning."""

    model_config = ConfigDict(extra="forbid")

    r: int = Field(16, gt=0)
    alpha: int = Field(32, gt=0)
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target_modules: list[str] | str = "all-linear"
    merge: bool = Field(True, description="also save the adapters merged into a full model, which every engine "
                                          "backend loads (single-process runs)")


class ProbeSettings(BaseModel):
    """Before and after training, does the model write the m1 thinking format by itself?"""

    model_config = ConfigDict(extra="forbid")

    items: int = Field(0, ge=0, description="evaluation-suite questions to check (0: no probe)")
    max_new_tokens: int = Field(256, gt=0)
    suite: str | None = Field(None, description="an m1 evaluation file; default: the real suite, else the bundled sample")
    sources: list[str] | None = Field(None, description="only these sources of the suite (default: all)")


class LaunchSettings(BaseModel):
    """The topology a preset was written for (the launch command is in the preset's header)."""

    model_config = ConfigDict(extra="forbid")

    nodes: int = Field(1, gt=0)
    processes_per_node: int = Field(1, gt=0)
    accelerate_config: str | None = None

    @property
    def world_size(self) -> int:
        return self.nodes * self.processes_per_node


class TrainConfig(BaseModel):
    """One `m1 train` run."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: str = Field("smollm2-135m", description="alias, Hugging Face id or local folder (safetensors, not GGUF)")
    revision: str | None = None
    trust_remote_code: bool = False
    model_dtype: Literal["float32", "bfloat16", "float16", "auto"] = Field(
        "float32", description="weights as loaded; bf16 below is mixed precision on top of them")
    data: DataSettings
    output_dir: str

    chat_template: str | None = Field(None, description="a Jinja file with {% generation %} markers "
                                                        "(default: the model's, or m1's/TRL's training version)")
    pad_token: str | None = Field(None, description="default: a token of the vocabulary that is not EOS")
    max_length: int = Field(32768, gt=0)
    max_length_policy: LengthPolicy = Field(
        "drop", description="records longer than max_length: drop them, truncate them (keep the start: "
                            "they lose their answer and end marker), or trim_reasoning (shorten the reasoning "
                            "so the answer and end marker stay)")
    packing: bool = False
    lora: LoraSettings | None = None
    gradient_checkpointing: bool = False

    learning_rate: float = Field(1e-5, gt=0.0)
    lr_scheduler: str = "cosine"
    warmup_ratio: float = Field(0.05, ge=0.0, lt=1.0)
    epochs: float = Field(5.0, gt=0.0)
    max_steps: int = Field(-1, description="stop after this many optimizer steps (-1: run all epochs)")
    global_batch_size: int = Field(16, gt=0)
    per_device_batch_size: int = Field(1, gt=0)
    adam_beta1: float = 0.9
    adam_beta2: float = 0.95
    weight_decay: float = Field(1e-4, ge=0.0)
    max_grad_norm: float = 1.0
    bf16: bool = False
    use_cpu: bool = False
    seed: int = 42

    logging_steps: int = Field(1, gt=0)
    save_strategy: Literal["no", "steps", "epoch"] = "epoch"
    save_steps: int = Field(500, gt=0)
    save_total_limit: int | None = Field(2, gt=0)
    eval_strategy: Literal["no", "steps", "epoch"] = "epoch"
    eval_steps: int | None = Field(None, gt=0)
    evaluate_before_training: bool = True
    resume_from_checkpoint: str | None = Field(None, description='"auto" (the latest checkpoint in output_dir, '
                                                                 'if any) or a checkpoint folder')
    probe: ProbeSettings = Field(default_factory=ProbeSettings)
    launch: LaunchSettings = Field(default_factory=LaunchSettings)
    trainer_args: dict[str, Any] = Field(default_factory=dict, description="any other SFTConfig field")

    @field_validator("save_strategy", "eval_strategy", mode="before")
    @classmethod
    def _yaml_no(cls, value: Any) -> Any:
        return "no" if value is False else value  # YAML reads a bare `no` as false

    @model_validator(mode="after")
    def _consistent(self) -> TrainConfig:
        if self.global_batch_size % self.per_device_batch_size:
            raise ValueError(f"global_batch_size ({self.global_batch_size}) must be a multiple of "
                             f"per_device_batch_size ({self.per_device_batch_size})")
        if self.packing and self.max_length_policy == "trim_reasoning":
            raise ValueError("packing cuts sequences at max_length itself; use max_length_policy drop or truncate")
        clash = sorted(set(self.trainer_args) & (set(type(self).model_fields) | DERIVED_TRAINER_ARGS))
        if clash:
            raise ValueError(f"trainer_args sets {', '.join(clash)}, which this config sets itself; "
                             "use the top-level key")
        return self

    def gradient_accumulation(self, world_size: int) -> int:
        per_step = self.per_device_batch_size * world_size
        if self.global_batch_size % per_step:
            raise ValueError(f"global_batch_size {self.global_batch_size} is not a multiple of per_device_batch_size "
                             f"{self.per_device_batch_size} × {world_size} processes; change one of them")
        return self.global_batch_size // per_step

    def sft_config(self, world_size: int = 1, output_dir: str | None = None) -> Any:
        """TRL's `SFTConfig` for this run on `world_size` processes."""
        from trl import SFTConfig

        evaluating = self.data.held_out > 0
        arguments: dict[str, Any] = dict(
            output_dir=output_dir or self.output_dir,
            assistant_only_loss=True,
            max_length=self.max_length,
            truncation_mode="keep_start",
            packing=self.packing,
            gradient_checkpointing=self.gradient_checkpointing,
            learning_rate=self.learning_rate,
            lr_scheduler_type=self.lr_scheduler,
            warmup_steps=self.warmup_ratio,  # a float below 1 is a ratio of the total steps
            num_train_epochs=self.epochs,
            max_steps=self.max_steps,
            per_device_train_batch_size=self.per_device_batch_size,
            per_device_eval_batch_size=self.per_device_batch_size,
            gradient_accumulation_steps=self.gradient_accumulation(world_size),
            adam_beta1=self.adam_beta1,
            adam_beta2=self.adam_beta2,
            weight_decay=self.weight_decay,
            max_grad_norm=self.max_grad_norm,
            bf16=self.bf16,
            use_cpu=self.use_cpu,
            seed=self.seed,
            data_seed=self.seed,
            logging_steps=self.logging_steps,
            save_strategy=self.save_strategy,
            save_steps=self.save_steps,
            save_total_limit=self.save_total_limit,
            eval_strategy=self.eval_strategy if evaluating else "no",
            eval_steps=self.eval_steps,
            include_num_input_tokens_seen="non_padding",
            report_to="none",
        )
        arguments |= self.trainer_args
        return SFTConfig(**arguments)

"""What an evaluation run is: model, backend, data, and the grid of budgets, "Wait" counts,
early-exit settings, samples per item and prompt suffixes.

    config = load_config(EvalConfig, "configs/eval/budget_sweep.yaml", ["per_source=10"])
    for point in config.grid_points(): ...

A grid point's key names its place on every axis: `B512_K0` (budget, Wait count), then `_Elow` for
an effort level (`grid.effort`, the chat backend's openai dialect; `Elow` alone for a point with a
level and no budget, `grid.max_thinking_tokens: [null]`), then `_EE1` for
the first early-exit setting of `grid.early_exit` (none for `null`, the fixed budget), then `_N4`
for 4 samples per item (none for 1), then `_S1` for the second prompt suffix: `B512_K0_EE1_N4_S1`.
Points with one sample and without early exit keep the keys they always had.

When sampling (temperature > 0), sample s of item uid draws with its own seed,
`sample_seed(config.seed, uid, s)` (which the backend mixes with the prompt text, as it does for
every request): a draw depends neither on the batch it ran in nor on what a resumed run had
already finished.

A run's identity is the hash of everything that can change its results (not where it is written),
so running the same command again finds the same run directory and resumes it, and a different
config always gets a different directory.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import itertools
import json
import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from m1.engine.default_model import DEFAULT_MODEL_ALIAS, default_preset
from m1.engine.policy import BudgetPolicy, EarlyExit, PresetName
from m1.engine.prompt import BOXED_SUFFIX
from m1.engine.registry import check_backend

STEP_BY_STEP_SUFFIX = "Let's think step by step. " + BOXED_SUFFIX


class GridConfig(BaseModel):
    """The axes of the sweep; every combination is one grid point."""

    model_config = ConfigDict(extra="forbid")

    max_thinking_tokens: list[int | None] = Field(
        default_factory=lambda: [128, 256, 512, 1024, 2048, 4096, 8192],
        description="thinking budgets B; null: no budget (the chat backend with an effort level only)")
    effort: list[str | None] = Field(
        default_factory=lambda: [None],
        description="reasoning_effort levels (the chat backend's openai dialect); null: none sent")
    num_extensions: list[int] = Field(default_factory=lambda: [0])
    prompt_suffix: list[str] = Field(default_factory=lambda: [BOXED_SUFFIX])
    early_exit: list[EarlyExit | None] = Field(
        default_factory=lambda: [None],
        description="early-exit settings to try (BudgetPolicy.early_exit); null: the fixed budget")
    samples: list[int] = Field(default_factory=lambda: [1],
                               description="samples drawn per item (N > 1 needs policy.sampling.temperature > 0)")

    @field_validator("max_thinking_tokens")
    @classmethod
    def _positive_budgets(cls, values: list[int]) -> list[int]:
        if not values or any(v is not None and v <= 0 for v in values):
            raise ValueError("thinking budgets must be positive token counts, e.g. [512, 1024]")
        if values.count(None) > 1:
            raise ValueError("null (no budget) may appear once: a second would be the same grid point")
        return values

    @field_validator("effort")
    @classmethod
    def _effort_levels(cls, values: list[str | None]) -> list[str | None]:
        from m1.engine.wire.effort import EFFORT_LEVELS

        if not values:
            raise ValueError("give at least one level, e.g. [low, medium, high], or [null] for none")
        for value in values:
            if value is not None and value not in EFFORT_LEVELS:
                raise ValueError(f"unknown effort level {value!r}; choose from {', '.join(EFFORT_LEVELS)}")
        if len(set(values)) < len(values):
            raise ValueError("each effort level may appear once: a second would be the same grid point")
        return values

    @field_validator("num_extensions")
    @classmethod
    def _non_negative(cls, values: list[int]) -> list[int]:
        if not values or any(v < 0 for v in values):
            raise ValueError("extension counts must be 0 or more, e.g. [0, 1, 2]")
        return values

    @field_validator("early_exit")
    @classmethod
    def _some_setting(cls, values: list[EarlyExit | None]) -> list[EarlyExit | None]:
        if not values:
            raise ValueError("give at least one setting, e.g. [null, {method: confidence, threshold: 0.9}]")
        if values.count(None) > 1:
            raise ValueError("null (the fixed budget) may appear once: a second would be the same grid point")
        return values

    @field_validator("samples")
    @classmethod
    def _sample_counts(cls, values: list[int]) -> list[int]:
        if not values or any(v < 1 for v in values):
            raise ValueError("sample counts must be 1 or more, e.g. [1, 4]")
        if len(set(values)) < len(values):
            raise ValueError("each sample count may appear once: a second would be the same grid point")
        return values


@dataclass(frozen=True)
class GridPoint:
    budget: int | None  # None for presets without thinking
    extensions: int
    suffix: str
    suffix_index: int
    early_exit: EarlyExit | None = None
    early_exit_index: int = 0  # 1, 2, … for the settings of grid.early_exit in order; 0 for the fixed budget
    samples: int = 1  # N: samples drawn per item
    effort: str | None = None  # a reasoning_effort level (the chat backend); None: none sent

    @property
    def key(self) -> str:
        if self.budget is None:
            head = "nothink" if self.effort is None else f"E{self.effort}"
        else:
            head = f"B{self.budget}_K{self.extensions}" + (f"_E{self.effort}" if self.effort else "")
        if self.early_exit_index:
            head += f"_EE{self.early_exit_index}"
        if self.samples > 1:
            head += f"_N{self.samples}"
        return head if self.suffix_index == 0 else f"{head}_S{self.suffix_index}"

    @property
    def fixed(self) -> GridPoint:
        """The same point with a fixed budget: what an early-exit point is compared with."""
        return GridPoint(self.budget, self.extensions, self.suffix, self.suffix_index, samples=self.samples,
                         effort=self.effort)


class EvalConfig(BaseModel):
    """One `m1 eval` run."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: str = DEFAULT_MODEL_ALIAS
    backend: str = Field("transformers", description="a name from m1.engine.registry")
    backend_options: dict[str, Any] = Field(default_factory=dict)
    data: str | None = Field(None, description="an m1 evaluation file; default: the real suite, else the bundled sample")
    sources: list[str] | None = None
    per_source: int | None = Field(None, gt=0)
    limit: int | None = Field(None, gt=0)
    seed: int = 42
    domains: str | None = Field(None, description="a labels file from m1 label-domains: scores are broken down "
                                                  "by its MeSH domains (recorded with its sha256; not part of the identity)")
    preset: PresetName = Field(None, description="default: the model's own (m1, think-tags for smollm2-135m)",
                               validate_default=True)
    policy: dict[str, Any] = Field(default_factory=dict, description="BudgetPolicy fields besides the grid's")
    grid: GridConfig = Field(default_factory=GridConfig)
    calibration: bool = Field(True, description="read the answer letters' probabilities at the forced answer "
                                                "(BudgetPolicy.answer_probability), for calibration")
    out_dir: str = "runs"
    name: str | None = None

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, backend: str) -> str:
        return check_backend(backend, purpose="m1 eval")

    @field_validator("preset", mode="before")
    @classmethod
    def _model_default_preset(cls, preset: str | None, info: ValidationInfo) -> str:
        return preset if preset is not None else default_preset(info.data.get("model", DEFAULT_MODEL_ALIAS))

    @model_validator(mode="after")
    def _policy_is_valid(self) -> EvalConfig:
        for axis in ("max_thinking_tokens", "num_extensions", "early_exit"):
            if axis in self.policy:
                raise ValueError(f"set {axis} in grid.{axis}, not in policy")
        if "answer_probability" in self.policy:
            raise ValueError("set calibration=true|false, not policy.answer_probability")
        if isinstance(self.policy.get("sampling"), dict) and "seed" in self.policy["sampling"]:
            raise ValueError("policy.sampling.seed: m1 eval gives every sample its own seed, made from seed= (the "
                             "run's seed), the item and the sample number; set seed= instead")
        for point in self.grid_points():
            # The fixed-budget policy first, so that an error is blamed on the field that causes it:
            # policy.* when the settings fail on their own, grid.early_exit[i] when only early exit does.
            try:
                self.policy_for(point.fixed)
            except ValidationError as err:
                raise ValueError(_first_error(err, "policy")) from None
            if point.early_exit is not None:
                try:
                    self.policy_for(point)
                except ValidationError as err:
                    position = self.grid.early_exit.index(point.early_exit)
                    raise ValueError(_first_error(err, f"grid.early_exit[{position}]")) from None
        several = max(self.grid.samples)
        if several > 1 and not self.sampled:
            raise ValueError(f"grid.samples: {several} samples per item would all be the same greedy answer; set "
                             f"policy.sampling.temperature above 0 (e.g. policy.sampling.temperature=0.7), "
                             f"or grid.samples=[1]")
        return self

    @model_validator(mode="after")
    def _chat_asks_only_what_it_can(self) -> EvalConfig:
        """The chat backend sends a budget (or a level) and nothing else: what its dialect has no
        field for is refused here, naming the field; the letter read defaults to off, as it needs logprobs."""
        efforts = [e for e in self.grid.effort if e is not None]
        if self.backend != "chat":
            if efforts:
                raise ValueError(f"grid.effort: levels are sent by the chat backend only (backend: chat, dialect: "
                                 f"openai); {self.backend} runs m1's own budget: use grid.max_thinking_tokens")
            if None in self.grid.max_thinking_tokens:
                raise ValueError("grid.max_thinking_tokens: null (no budget) is for the chat backend with an effort "
                                 "level; m1's own backends always have a budget")
            return self
        from m1.engine.backends.chat import ChatBackend, check_dialect_policy

        accepted = set(inspect.signature(ChatBackend.__init__).parameters) - {"self", "model"}
        unknown = sorted(set(self.backend_options) - accepted)
        if unknown:
            raise ValueError(f"backend_options: the chat backend has no option {', '.join(unknown)}; it takes "
                             f"{', '.join(sorted(accepted))}")
        if "calibration" not in self.model_fields_set:
            self.calibration = False
        dialect = self.backend_options.get("dialect", "openai")
        for point in self.grid_points():
            if point.budget is None and point.effort is None and self.preset != "no-think":
                raise ValueError("grid.max_thinking_tokens: null needs an effort level (grid.effort) to send instead")
            check_dialect_policy(dialect, self.policy_for(point), effort=point.effort)
        return self

    @property
    def sampled(self) -> bool:
        """Whether decoding samples (temperature > 0) rather than taking the greedy token."""
        return self.policy_for(self.grid_points()[0]).sampling.temperature > 0

    def grid_points(self) -> list[GridPoint]:
        suffixes = list(enumerate(self.grid.prompt_suffix))
        settings = [(setting, index) for index, setting in _numbered(self.grid.early_exit)]
        budgets = [(None, 0)] if self.preset == "no-think" else list(
            itertools.product(self.grid.max_thinking_tokens, self.grid.num_extensions))
        return [GridPoint(b, k, s, i, setting, number, n, effort)
                for (b, k), effort, (setting, number), n, (i, s)
                in itertools.product(budgets, self.grid.effort, settings, self.grid.samples, suffixes)]

    def policy_for(self, point: GridPoint) -> BudgetPolicy:
        overrides = dict(self.policy)
        if point.budget is not None:
            overrides |= {"max_thinking_tokens": point.budget, "num_extensions": point.extensions}
        if point.early_exit is not None:
            overrides["early_exit"] = point.early_exit
        return BudgetPolicy.from_preset(self.preset, answer_probability=self.calibration, **overrides)

    def drawn_with(self, point: GridPoint) -> GridPoint | None:
        """The point with several samples whose sample 0 is exactly `point` (a one-sample point with
        the same settings: same policy, same seed (seed, uid, 0)), so it is not drawn twice; None
        when there is none."""
        if point.samples != 1 or not self.sampled:
            return None
        others = [p for p in self.grid_points() if p.samples > 1 and dataclasses.replace(p, samples=1) == point]
        return min(others, key=lambda p: p.samples, default=None)

    def sample_policy(self, policy: BudgetPolicy, uid: str, sample: int) -> BudgetPolicy:
        """`policy` for sample `sample` (0-based) of item `uid`: with that sample's own seed when
        sampling, unchanged when greedy."""
        if policy.sampling.temperature == 0:
            return policy
        sampling = policy.sampling.model_copy(update={"seed": sample_seed(self.seed, uid, sample)})
        return policy.model_copy(update={"sampling": sampling})

    def identity(self) -> str:
        """A short hash of everything that decides the results (not the output location)."""
        # Domain labels change no prediction, only how the scores are broken down: adding or editing
        # them re-scores the same run (run.json and the summary record the file and its sha256).
        relevant = self.model_dump(mode="json", exclude={"out_dir", "name", "domains"})
        # A grid without early exit or several samples, with calibration on, hashes as it did before
        # those settings existed, so runs started then resume (the answer read changes no answer).
        if relevant["grid"]["early_exit"] == [None]:
            del relevant["grid"]["early_exit"]
        if relevant["grid"]["samples"] == [1]:
            del relevant["grid"]["samples"]
        if relevant["grid"]["effort"] == [None]:
            del relevant["grid"]["effort"]
        if relevant["calibration"]:
            del relevant["calibration"]
        # Sampled runs drew with seeds made from the prompt alone before per-sample seeds: resuming
        # one would mix two sets of draws, so sampled configs hash anew.
        if self.sampled:
            relevant["sample_seeds"] = "seed, uid, sample"
        # Secrets never belong in a run's identity or on disk.
        relevant["backend_options"] = {k: v for k, v in relevant["backend_options"].items() if "key" not in k.lower()}
        return hashlib.sha1(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:10]

    def domains_file(self) -> dict[str, str] | None:
        """{"file", "sha256"} of the labels file (run.json records it); None without one."""
        from m1.evaluation.domains.labels import labels_file

        return None if self.domains is None else labels_file(self.domains)

    def run_name(self) -> str:
        if self.name:
            return self.name
        short = re.sub(r"[^A-Za-z0-9.-]+", "-", self.model.rstrip("/").split("/")[-1])
        return f"{short}-{self.preset}-{self.identity()}"


def sample_seed(seed: int, uid: str, sample: int) -> int:
    """The seed of sample `sample` (0-based) of item `uid` in a run seeded with `seed`: 31 bits,
    a range every engine and API accepts."""
    digest = hashlib.sha256(f"{seed}\x1f{uid}\x1f{sample}".encode()).digest()
    return int.from_bytes(digest[:4], "big") >> 1


def _numbered(settings: list[EarlyExit | None]) -> list[tuple[int, EarlyExit | None]]:
    """Each setting with its key number: 1, 2, … for early-exit settings in order, 0 for null."""
    numbered, count = [], 0
    for setting in settings:
        count += setting is not None
        numbered.append((count if setting is not None else 0, setting))
    return numbered


def _first_error(err: ValidationError, where: str) -> str:
    """The first error, named by the config field it came from (`where`, then the field inside it)."""
    first = err.errors()[0]
    field = ".".join([where, *(str(part) for part in first["loc"])])
    return f"{field}: {first['msg'].removeprefix('Value error, ')}"

"""Typed configs from YAML with key=value overrides (m1.config), shared by every job."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict

from m1.config import load_config
from m1.data.errors import DataError


class Teacher(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = "plain"
    max_tokens: int = 100


class Distill(BaseModel):
    model_config = ConfigDict(extra="forbid")
    teacher: Teacher = Teacher(model="deepseek-reasoner", max_tokens=8000)
    workers: int = 4


class Job(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = "job"
    distill: Distill | None = None
    sizes: list[int] = [1]


def test_override_inside_a_default_section_keeps_its_other_defaults() -> None:
    config = load_config(Job, None, ["distill.teacher.max_tokens=77"])
    # The section's own default (deepseek-reasoner), not the bare Teacher() default.
    assert config.distill.teacher == Teacher(model="deepseek-reasoner", max_tokens=77)
    assert config.distill.workers == 4


def test_overrides_merge_into_yaml_sections_and_parse_values(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_text("name: from-yaml\ndistill:\n  workers: 2\n")
    config = load_config(Job, path, ["distill.teacher.model=r1", "sizes=[3, 4]"])
    assert (config.name, config.distill.workers, config.distill.teacher.model) == ("from-yaml", 2, "r1")
    assert config.distill.teacher.max_tokens == 8000
    assert config.sizes == [3, 4]


def test_unknown_keys_name_the_key_and_where(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_text("distill:\n  temp: 0.7\n")
    with pytest.raises(DataError, match=r"job.yaml.*distill.temp.*valid keys: teacher, workers"):
        load_config(Job, path)
    with pytest.raises(DataError, match="command line.*'name' is not a section"):
        load_config(Job, None, ["name=a", "name.x=1"])
    with pytest.raises(DataError, match="command line, field 'name': Input should be a valid string"):
        load_config(Job, None, ["name.x=1"])

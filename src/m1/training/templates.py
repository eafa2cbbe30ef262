"""Chat templates and the pad token for training: what makes assistant-only loss and stopping work.

    template = training_chat_template(tokenizer)          # has {% generation %} markers
    check_renders_like(tokenizer, template)               # identical text to the model's own template
    pad = choose_pad_token(tokenizer, model, configured=None)   # never an end-of-sequence token

Assistant-only loss needs to know which tokens the assistant wrote. transformers marks them when
the chat template wraps the assistant's text in `{% generation %}…{% endgeneration %}`. Few
models ship such a template: TRL patches the ones it knows (Qwen2.5 among them); m1 adds
SmolLM2's ChatML template, whose training version marks exactly the assistant's content and the
`<|im_end|>` that ends it. The `<|im_start|>assistant\\n` header is not marked (the inference
prompt already ends with it) and neither is the newline after `<|im_end|>` (generation stops
before it).

The training template is used only to tokenize the training data. What is saved with the model
(checkpoints and the final folder) is the model's original template: every m1 backend, vLLM and
llama.cpp render prompts with the saved template, and the original one is the template those
engines understand. `check_renders_like` refuses a training template that renders any of a set of
conversations (with and without a system turn, several turns) differently from the original.

The pad token must never be an end-of-sequence token: wherever padding is masked by id (collators
that set labels to -100 where `input_ids == pad_token_id`), the end-of-turn token would be masked
too and the model would never learn to stop (the reference padded with `<|fim_pad|>` for this
reason). SmolLM2's tokenizer pads with `<|im_end|>`, so m1 picks another token the tokenizer has.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from m1.data.errors import DataError

# SmolLM2-Instruct's template exactly as its tokenizer ships it (the newlines inside the Jinja string
# literals are real newline characters there too), and its training version.
SMOLLM2_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

SMOLLM2_TRAINING_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<|im_start|>assistant\n' }}{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}{{ '\n' }}"
    "{% else %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# Inference template (exact text) → its training version with generation markers.
KNOWN_TRAINING_TEMPLATES = {SMOLLM2_CHAT_TEMPLATE: SMOLLM2_TRAINING_TEMPLATE}

# Pad tokens that models already reserve for padding or that never occur inside a chat, in order of
# preference; the first one a tokenizer has and that is not an end-of-sequence token is used.
PAD_CANDIDATES = ("<|fim_pad|>", "<|finetune_right_pad_id|>", "<|pad|>", "<pad>", "[PAD]", "<|endoftext|>")

_GENERATION_MARKER = re.compile(r"\{%-?\s*generation\s*-?%\}")

# Conversations that exercise a template's branches: with and without a system turn, several turns.
_PROBE_CONVERSATIONS = (
    [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "<|im_start|>think\nR\n<|im_start|>answer\nA"}],
    [{"role": "system", "content": "S"}, {"role": "user", "content": "Q?"}, {"role": "assistant", "content": "A"}],
    [{"role": "user", "content": "Q1"}, {"role": "assistant", "content": "A1"}, {"role": "user", "content": "Q2"},
     {"role": "assistant", "content": "A2"}],
)


def has_generation_markers(template: str | None) -> bool:
    return bool(template) and _GENERATION_MARKER.search(template) is not None


def inference_template(tokenizer: Any) -> str:
    template = tokenizer.chat_template
    if isinstance(template, dict):  # templates shipped as named variants: the default one is used for chat
        template = template.get("default")
    if not template:
        raise DataError.at(getattr(tokenizer, "name_or_path", "tokenizer"), "", "chat_template",
                           "the tokenizer has no chat template, so chat records cannot be rendered",
                           "train a chat (instruct) model, or set chat_template= to a Jinja file")
    return template


def training_chat_template(tokenizer: Any, template_file: str | None = None) -> str:
    """The template that tokenizes training data: the model's own when it has generation markers,
    else a user-given file, else m1's or TRL's training version of a known template."""
    if template_file is not None:
        from pathlib import Path

        template = Path(template_file).read_text(encoding="utf-8")
        if not has_generation_markers(template):
            raise DataError.at(template_file, "", "chat_template", "the template has no {% generation %} markers",
                               "wrap the assistant's content and its end-of-turn token in "
                               "{% generation %}…{% endgeneration %}")
        return template
    original = inference_template(tokenizer)
    if has_generation_markers(original):
        return original
    if original in KNOWN_TRAINING_TEMPLATES:
        return KNOWN_TRAINING_TEMPLATES[original]
    from trl.chat_template_utils import get_training_chat_template

    try:
        patched = get_training_chat_template(tokenizer)
    except ValueError:
        patched = None
    if patched is None:
        raise DataError.at(getattr(tokenizer, "name_or_path", "tokenizer"), "", "chat_template",
                           "the model's chat template has no {% generation %} markers and neither m1 nor TRL "
                           "knows a training version of it",
                           "copy the template, wrap the assistant's content and end-of-turn token in "
                           "{% generation %}…{% endgeneration %}, and pass chat_template=<file>")
    return patched


def check_renders_like(tokenizer: Any, template: str) -> None:
    """Fail unless `template` renders the probe conversations exactly as the model's own template.

    Training on text the inference template would not produce teaches the model a format it will
    never be shown, so a mismatch is an error, not a warning.
    """
    original = inference_template(tokenizer)
    if template == original:
        return
    for messages in _PROBE_CONVERSATIONS:
        for generation_prompt in (False, True):
            shown = messages[:-1] if generation_prompt else messages
            expected = tokenizer.apply_chat_template(shown, tokenize=False, add_generation_prompt=generation_prompt,
                                                     chat_template=original)
            got = tokenizer.apply_chat_template(shown, tokenize=False, add_generation_prompt=generation_prompt,
                                                chat_template=template)
            if got != expected:
                raise DataError.at("chat_template", "", "chat_template",
                                   f"the training template renders {shown!r} as {got!r}, the model's template as "
                                   f"{expected!r}", "make the training template identical apart from its "
                                   "{% generation %} markers")


@contextmanager
def tokenizer_template(tokenizer: Any, template: str) -> Iterator[None]:
    """Give the tokenizer `template` for the duration of the block (TRL reads it from the tokenizer
    while it tokenizes the data), then put the original back so nothing saved ever carries it."""
    original = tokenizer.chat_template
    tokenizer.chat_template = template
    try:
        yield
    finally:
        tokenizer.chat_template = original


def end_of_sequence_ids(tokenizer: Any, model: Any = None) -> set[int]:
    """Every id that ends generation: the tokenizer's EOS and the model's configured EOS ids."""
    ids: set[int] = set()
    sources = [tokenizer.eos_token_id]
    if model is not None:
        sources += [getattr(model.config, "eos_token_id", None),
                    getattr(getattr(model, "generation_config", None), "eos_token_id", None)]
    for value in sources:
        if isinstance(value, int):
            ids.add(value)
        elif value:
            ids.update(int(v) for v in value)
    return ids


def choose_pad_token(tokenizer: Any, model: Any = None, configured: str | None = None) -> str:
    """A pad token that is in the vocabulary and is not an end-of-sequence token."""
    vocab = tokenizer.get_vocab()
    eos_ids = end_of_sequence_ids(tokenizer, model)
    if configured is not None:
        if configured not in vocab:
            raise DataError.at("config", "", "pad_token", f"{configured!r} is not in the tokenizer's vocabulary",
                               "pick a token the tokenizer has, or leave pad_token unset to choose one")
        if vocab[configured] in eos_ids:
            raise DataError.at("config", "", "pad_token", f"{configured!r} ends generation (an EOS id)",
                               "a pad equal to EOS masks the end-of-turn token: pick another token")
        return configured
    current = tokenizer.pad_token
    if current is not None and vocab.get(current) not in eos_ids:
        return current
    for candidate in PAD_CANDIDATES:
        if candidate in vocab and vocab[candidate] not in eos_ids:
            return candidate
    raise DataError.at(getattr(tokenizer, "name_or_path", "tokenizer"), "", "pad_token",
                       "the tokenizer pads with its end-of-sequence token and has no other known pad token",
                       "set pad_token= to a token of the vocabulary that never occurs in the data")

"""Assistant-only loss, the pad token and the training chat template, on the tiny model.

The masking test is the one the issue asks for: after TRL has prepared the data, exactly the
tokens of the assistant's content and its `<|im_end|>` carry loss — not the system or user turns,
not the `<|im_start|>assistant\\n` header the inference prompt already ends with, not the newline
after `<|im_end|>`, not padding.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from m1.curation.sft_format import sft_messages
from m1.data.errors import DataError
from m1.training.config import DataSettings, TrainConfig
from m1.training.data import SFTRecord
from m1.training.recipe import build_trainer, load_model
from m1.training.templates import (
    SMOLLM2_TRAINING_TEMPLATE,
    check_renders_like,
    choose_pad_token,
    has_generation_markers,
    training_chat_template,
)

REASONING = "The reticulocyte count is low, so production fails.\n\nParvovirus B19 stops erythropoiesis."
CONVERSATIONS = [
    sft_messages("Which infection causes aplastic crisis?\nA. Parvovirus B19\nB. EBV", REASONING, "A. Parvovirus B19"),
    [{"role": "system", "content": "You are a careful physician."},
     {"role": "user", "content": "Is scurvy caused by vitamin C deficiency?"},
     {"role": "assistant", "content": "<|im_start|>think\nYes, ascorbate.\n<|im_start|>answer\nAnswer: yes"}],
]


def tiny_config(model_dir: Path, tmp_path: Path, **overrides) -> TrainConfig:
    values = dict(model=str(model_dir), data=DataSettings(path=str(tmp_path / "unused.jsonl")),
                  output_dir=str(tmp_path / "run"), max_length=512, use_cpu=True, global_batch_size=2,
                  per_device_batch_size=2, epochs=1, save_strategy="no", eval_strategy="no")
    return TrainConfig(**(values | overrides))


@pytest.fixture(scope="module")
def tiny_trainer(tiny_model_dir, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("masking")
    config = tiny_config(tiny_model_dir, tmp_path)
    model, tokenizer, template = load_model(config, Console(quiet=True))
    records = [SFTRecord(f"r{i}", messages) for i, messages in enumerate(CONVERSATIONS)]
    return build_trainer(config, model, tokenizer, template, records, []), tokenizer


def test_exactly_the_assistant_content_and_its_end_marker_carry_loss(tiny_trainer) -> None:
    trainer, tokenizer = tiny_trainer
    for example, messages in zip(trainer.train_dataset, CONVERSATIONS):
        # What the model's own (inference) template renders, tokenized.
        full = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"]
        prompt = tokenizer.apply_chat_template(messages[:-1], tokenize=True, return_dict=True,
                                               add_generation_prompt=True)["input_ids"]
        assert example["input_ids"] == full  # the training template tokenizes exactly like the original
        assert full[: len(prompt)] == prompt
        in_loss = [i for i, label in enumerate(example["labels"]) if label != -100]
        # From just after "<|im_start|>assistant\n" up to and including <|im_end|>; the final "\n" is out.
        assert in_loss == list(range(len(prompt), len(full) - 1))
        assert tokenizer.decode([full[i] for i in in_loss]) == messages[-1]["content"] + "<|im_end|>"
        assert all(example["labels"][i] == full[i] for i in in_loss)


def test_padding_never_masks_the_end_of_turn(tiny_trainer) -> None:
    trainer, tokenizer = tiny_trainer
    eos = tokenizer.eos_token_id
    assert tokenizer.pad_token_id != eos
    assert trainer.data_collator.pad_token_id == tokenizer.pad_token_id
    assert trainer.model.config.pad_token_id == tokenizer.pad_token_id
    batch = trainer.data_collator([trainer.train_dataset[0], trainer.train_dataset[1]])
    for row in range(2):
        labels, ids, mask = batch["labels"][row], batch["input_ids"][row], batch["attention_mask"][row]
        real = int(mask.sum())
        assert (labels[real:] == -100).all() and (ids[real:] == tokenizer.pad_token_id).all()
        assert labels[real - 2] == eos  # <|im_end|> is learned (the last real token is the newline)


def test_packing_keeps_the_assistant_only_labels(tiny_model_dir, tiny_trainer, tmp_path) -> None:
    unpacked, _ = tiny_trainer
    config = tiny_config(tiny_model_dir, tmp_path, packing=True, max_length=256)
    model, tokenizer, template = load_model(config, Console(quiet=True))
    records = [SFTRecord(f"r{i}", CONVERSATIONS[i % 2]) for i in range(6)]
    packed = build_trainer(config, model, tokenizer, template, records, []).train_dataset
    assert len(packed) < len(records) and all(len(row["input_ids"]) <= 256 for row in packed)
    in_loss = lambda rows: sum(label != -100 for row in rows for label in row["labels"])  # noqa: E731
    assert in_loss(packed) == 3 * in_loss(unpacked.train_dataset)


def test_pad_token_choice(tiny_model_dir) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert tokenizer.pad_token == tokenizer.eos_token == "<|im_end|>"  # SmolLM2 pads with EOS
    assert choose_pad_token(tokenizer, model) == "<|endoftext|>"
    with pytest.raises(DataError, match="pad_token.*ends generation"):
        choose_pad_token(tokenizer, model, configured="<|im_end|>")
    with pytest.raises(DataError, match="not in the tokenizer's vocabulary"):
        choose_pad_token(tokenizer, model, configured="<|fim_pad|>")
    # An id the generation config lists as EOS is excluded too (as Qwen2.5 lists <|endoftext|>).
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|endoftext|>")]
    with pytest.raises(DataError, match="no other known pad token"):
        choose_pad_token(tokenizer, model)


def test_smollm2_training_template_renders_like_the_models_own(tiny_model_dir, shared_data) -> None:
    from transformers import AutoTokenizer

    from m1.data.loaders import load_items
    from m1.curation.sft_format import sft_prompt

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    template = training_chat_template(tokenizer)
    assert template == SMOLLM2_TRAINING_TEMPLATE and has_generation_markers(template)
    assert not has_generation_markers(tokenizer.chat_template)
    check_renders_like(tokenizer, template)
    items = load_items(shared_data / "pools/huatuo_demo/demo_data.json", format="huatuo-demo").items[:20]
    conversations = [sft_messages(sft_prompt(i.question, i.options), i.metadata["reasoning"], i.metadata["response"])
                     for i in items] + CONVERSATIONS
    for messages in conversations:
        for shown, generation_prompt in ((messages, False), (messages[:-1], True)):
            assert (tokenizer.apply_chat_template(shown, tokenize=False, add_generation_prompt=generation_prompt,
                                                  chat_template=template)
                    == tokenizer.apply_chat_template(shown, tokenize=False, add_generation_prompt=generation_prompt))


def test_qwen_template_gets_trls_training_version_and_unknown_templates_fail(tiny_model_dir, tmp_path) -> None:
    from transformers import AutoTokenizer
    from trl.chat_template_utils import qwen2_5_chat_template, qwen2_5_training_chat_template

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokenizer.chat_template = qwen2_5_chat_template
    assert training_chat_template(tokenizer) == qwen2_5_training_chat_template

    tokenizer.chat_template = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    with pytest.raises(DataError, match="no \\{% generation %\\} markers"):
        training_chat_template(tokenizer)
    marked = tmp_path / "mine.jinja"
    marked.write_text("{% for m in messages %}{{ m['role'] }}: {% if m['role'] == 'assistant' %}{% generation %}"
                      "{{ m['content'] }}{% endgeneration %}{% else %}{{ m['content'] }}{% endif %}{{ '\\n' }}{% endfor %}")
    assert training_chat_template(tokenizer, str(marked)) == marked.read_text()
    check_renders_like(tokenizer, marked.read_text())
    wrong = tmp_path / "wrong.jinja"
    wrong.write_text("{% for m in messages %}{% generation %}{{ m['content'] }}{% endgeneration %}{% endfor %}")
    with pytest.raises(DataError, match="renders"):
        check_renders_like(tokenizer, wrong.read_text())


def test_saved_checkpoints_carry_the_original_template(tiny_trainer, tmp_path) -> None:
    trainer, tokenizer = tiny_trainer
    assert not has_generation_markers(tokenizer.chat_template)  # restored once the trainer was built
    trainer.save_model(str(tmp_path / "saved"))
    from transformers import AutoTokenizer

    saved = AutoTokenizer.from_pretrained(tmp_path / "saved")
    assert saved.chat_template == tokenizer.chat_template and saved.pad_token == "<|endoftext|>"

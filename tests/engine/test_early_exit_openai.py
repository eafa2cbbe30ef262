"""Early exit through the OpenAI-compatible backend, on the real default model, against real servers:
vLLM's own OpenAI server (token ids, `top_logprobs`) and `m1 serve` (the answer tokens' logprobs),
and a server declared without logprobs (the backend falls back to trial answers and `consistency`,
and says so in the record). The same probe reads the answer's probability once thinking ends
(`answer_probability`), with the same fallback.

Decoding is greedy, so "a probe never changes the thinking" is checked as identical token ids:
observed probes leave the thinking exactly as without early exit, and an exit keeps a prefix of it;
the answer read leaves every token as it was.
"""

from __future__ import annotations

import pytest

from m1.engine.policy import BudgetPolicy
from m1.engine.prompt import render_prompt

from .test_answer_read import READ_KEYS, same_but_the_read
from .test_hf_backend import QUESTIONS, check_accounting

MULTIPLE_CHOICE = QUESTIONS[0]
FREE_FORM = ("What is the first-line treatment for anaphylaxis?", None)
BUDGET = {"max_thinking_tokens": 32, "num_extensions": 1, "max_answer_tokens": 4}
# A string this model writes in its first sentence, so that a round pauses there and a probe runs.
TRANSITIONS = (" the",)


def with_early_exit(**early_exit: object) -> BudgetPolicy:
    return BudgetPolicy.from_preset("m1", **BUDGET, early_exit=early_exit or None)


PLAIN = with_early_exit()
OBSERVE = with_early_exit(method="confidence", every=None, transitions=TRANSITIONS, observe=True)
# Any answer is confident enough: the sample exits at its first probe with an answer, from 4 tokens on.
EXIT = with_early_exit(method="confidence", threshold=1e-6, min_tokens=4, every=None, transitions=TRANSITIONS)
AGREE = with_early_exit(method="consistency", agree=2, every=None, transitions=TRANSITIONS)


def batch(tokenizer, questions=(MULTIPLE_CHOICE, FREE_FORM)) -> tuple[list[str], list[list[str] | None]]:
    prompts = [render_prompt(tokenizer, question, options, PLAIN) for question, options in questions]
    return prompts, [list(options) if options else None for _question, options in questions]


def client(base_url: str, model_dir, **options):
    from m1.engine.backends.openai import OpenAIBackend

    return OpenAIBackend("smollm2-135m", base_url=base_url, tokenizer=str(model_dir), keep_trace=True, **options)


def check_thinking_kept(record, reference) -> None:
    """An exit keeps a prefix of the thinking without early exit; otherwise the thinking is all of it."""
    if record.thinking_end == "early_exit":
        assert reference.thinking_ids[:record.thinking_tokens] == record.thinking_ids
        assert record.reply.startswith(PLAIN.answer_after_budget) and record.answer_end is not None
    else:
        assert (record.thinking_ids, record.thinking_end, record.answer_ids) == (
            reference.thinking_ids, reference.thinking_end, reference.answer_ids)


@pytest.fixture(scope="module")
def backend(vllm_server, default_model_dir):
    return client(vllm_server, default_model_dir, max_context=4096, concurrency=4)


@pytest.fixture(scope="module")
def plain(backend):
    prompts, choices = batch(backend.tokenizer)
    return backend.generate(prompts, PLAIN, choices=choices)


@pytest.fixture(scope="module")
def probed(backend):
    """Observed and exiting samples in one call (a policy per prompt), so their requests share batches."""
    prompts, choices = batch(backend.tokenizer)
    live: dict[int, list[dict]] = {}
    records = backend.generate(prompts * 2, [OBSERVE] * 2 + [EXIT] * 2, choices=choices * 2,
                               on_probe=lambda index, entry: live.setdefault(index, []).append(entry))
    return records, live


@pytest.mark.slow
def test_observed_probes_leave_the_thinking_unchanged(plain, probed) -> None:
    records, live = probed
    for index, (record, reference) in enumerate(zip(records[:2], plain)):
        check_accounting(record, OBSERVE)
        assert (record.thinking_ids, record.thinking_end, record.extensions_used, record.answer_ids) == (
            reference.thinking_ids, reference.thinking_end, reference.extensions_used, reference.answer_ids)
        assert record.probes and live[index] == record.probes
        assert record.probe_tokens == sum(probe["tokens"] for probe in record.probes)
        points = [probe["thinking_tokens"] for probe in record.probes]
        assert points == sorted(points) and points[-1] <= record.thinking_tokens
        assert record.exit_rule == "confidence >= 0.95 (observe only)"


@pytest.mark.slow
def test_letter_probes_read_top_logprobs_and_free_form_probes_a_trial(probed) -> None:
    records, _live = probed
    letters = list(MULTIPLE_CHOICE[1])
    for probe in records[0].probes:
        assert probe["read"] == "letters" and probe["answer"] in letters and probe["note"] is None
        assert 0 <= probe["probability"] <= 1 and 0 <= probe["outside"] <= 1
        assert probe["tokens"] > 1  # the answer prefix fed on the side branch, and the one token read
    for probe in records[1].probes:
        assert probe["read"] == "trial" and probe["outside"] is None and probe["note"] is None
        assert 0 < probe["probability"] <= 1  # the trial's mean token probability


@pytest.mark.slow
def test_an_exit_happens_at_the_first_answered_probe_and_keeps_the_thinking_so_far(plain, probed) -> None:
    records, _live = probed
    for record, reference in zip(records[2:], plain):
        check_accounting(record, EXIT)
        check_thinking_kept(record, reference)
        answered = [probe for probe in record.probes if probe["answer"] is not None]
        if answered:
            assert record.thinking_end == "early_exit" and record.probes[-1] is answered[0]
            assert record.thinking_tokens == answered[0]["thinking_tokens"] >= EXIT.early_exit.min_tokens
        else:
            assert record.thinking_end != "early_exit"
    assert any(record.thinking_end == "early_exit" for record in records[2:])


@pytest.mark.slow
def test_without_logprobs_probes_are_trial_answers_without_probability(vllm_server, default_model_dir, plain) -> None:
    backend = client(vllm_server, default_model_dir, max_context=4096, logprobs=False)
    prompts, choices = batch(backend.tokenizer)
    records = backend.generate(prompts, AGREE, choices=choices)
    for record, reference in zip(records, plain):
        check_accounting(record, AGREE)
        check_thinking_kept(record, reference)
        assert record.probes and record.exit_rule == "consistency of 2 probes"
        for probe in record.probes:
            assert probe["read"] == "trial" and probe["probability"] is None
            assert "no logprobs" in probe["note"] and "logprobs=False" in probe["note"]


READ = PLAIN.model_copy(update={"answer_probability": True})


def check_answer_reads(records, reference, *, probability: bool) -> None:
    """Every token as without the read; a read for the prompt with letters only."""
    for record, base, (_question, options) in zip(records, reference, (MULTIPLE_CHOICE, FREE_FORM)):
        check_accounting(record, READ)
        same_but_the_read(record, base)
        if options is None:
            assert record.answer_read is None
            continue
        read = record.answer_read
        assert list(read) == READ_KEYS and read["reused"] is False
        if probability:
            assert read["tokens"] > 1
            assert read["read"] == "letters" and read["note"] is None and read["answer"] in options
            assert sum(read["letters"].values()) == pytest.approx(1.0)
            assert read["letters"][read["answer"]] == read["probability"] and 0 <= read["outside"] <= 1
        else:  # nothing to read, and why: no trial answer is asked for, it would only repeat the answer
            assert read["read"] == "trial" and read["probability"] is None and read["letters"] is None
            assert read["tokens"] == 0
            assert read["outside"] is None and "no logprobs" in read["note"]


@pytest.mark.slow
def test_the_answer_read_reads_top_logprobs_and_changes_no_token(backend, plain) -> None:
    prompts, choices = batch(backend.tokenizer)
    live = []
    records = backend.generate(prompts, READ, choices=choices, on_probe=lambda *probe: live.append(probe))
    check_answer_reads(records, plain, probability=True)
    assert not live  # the read is no early-exit probe


@pytest.mark.slow
def test_without_logprobs_the_answer_read_is_a_trial_without_probability(vllm_server, default_model_dir,
                                                                         plain) -> None:
    backend = client(vllm_server, default_model_dir, max_context=4096, logprobs=False)
    prompts, choices = batch(backend.tokenizer)
    records = backend.generate(prompts, READ, choices=choices)
    check_answer_reads(records, plain, probability=False)
    assert "logprobs=False" in records[0].answer_read["note"]


def test_confidence_without_logprobs_is_refused_before_any_request(default_model_dir) -> None:
    # Nothing listens on port 9: a request would come back as a failed record, not as this error.
    backend = client("http://127.0.0.1:9/v1", default_model_dir, max_context=4096, logprobs=False, max_retries=0)
    prompts, choices = batch(backend.tokenizer)
    with pytest.raises(ValueError, match=r"early_exit\.method.*logprobs=False"):
        backend.generate(prompts, [AGREE, EXIT], choices=choices)


@pytest.fixture(scope="module")
def m1_server(default_model_dir, tmp_path_factory):
    from m1.serving.launch import ServerProcess

    log = tmp_path_factory.mktemp("m1-serve-early-exit") / "server.log"
    with ServerProcess(["--model", "smollm2-135m", "--backend", "transformers", "--max-context", "1024"],
                       log_path=log, env={"M1_API_KEY": ""}) as process:
        yield process


@pytest.fixture(scope="module")
def m1_plain(m1_server, default_model_dir):
    """The batch through m1 serve, without early exit."""
    backend = client(m1_server.base_url, default_model_dir, max_context=1024, concurrency=2)
    prompts, choices = batch(backend.tokenizer)
    return backend.generate(prompts, PLAIN, choices=choices)


@pytest.mark.slow
def test_through_m1_serve_confidence_reads_the_letters_logprobs(m1_server, m1_plain, default_model_dir) -> None:
    """m1 serve returns the answer tokens' `logprobs` (a plain completion's answer is all it
    generates) and strips stops from its ids: the backend reads letter probabilities as it does on
    vLLM's server, and leaves the thinking as it is without early exit."""
    backend = client(m1_server.base_url, default_model_dir, max_context=1024, concurrency=2)
    prompts, choices = batch(backend.tokenizer, [MULTIPLE_CHOICE])
    # m1 serve cannot say whether a round stopped at the transition or at a think stop.
    policy = with_early_exit(method="confidence", every=8, transitions=TRANSITIONS)
    reference = m1_plain[0]
    record = backend.generate(prompts, policy, choices=choices)[0]
    check_accounting(record, policy)
    check_thinking_kept(record, reference)
    assert record.probes
    for probe in record.probes:
        if probe["read"] == "letters":
            assert probe["probability"] is not None and probe["note"] is None
        else:  # the most likely next token was a stop: no answer token, so no logprobs (as OpenAI's API)
            assert probe["note"] == "no logprobs: the server returned none", probe


@pytest.mark.slow
def test_through_m1_serve_the_answer_read_reads_logprobs(m1_server, m1_plain, default_model_dir) -> None:
    backend = client(m1_server.base_url, default_model_dir, max_context=1024, concurrency=2)
    prompts, choices = batch(backend.tokenizer)
    records = backend.generate(prompts, READ, choices=choices)
    read = records[0].answer_read
    # The sample goes on, its tokens as they were; a read whose most likely next token is a stop gets
    # no answer token, so no logprobs, and says so.
    if read["read"] == "letters":
        check_answer_reads(records, m1_plain, probability=True)
    else:
        for record, base in zip(records, m1_plain):
            check_accounting(record, READ)
            same_but_the_read(record, base)
        assert read["note"] == "no logprobs: the server returned none" and read["probability"] is None, read


def test_a_probe_point_inside_a_multi_token_stop_does_not_split_it(backend) -> None:
    from .test_early_exit import LETTERS, split_stop_policies

    prompts, plain, probed = split_stop_policies(backend)
    expected = backend.generate(prompts, plain)
    assert expected[0].thinking_end == "extensions_spent"
    for record, want in zip(backend.generate(prompts, probed, choices=LETTERS[:len(prompts)]), expected):
        assert (record.thinking_ids, record.answer_ids, record.thinking_end) == \
            (want.thinking_ids, want.answer_ids, want.thinking_end)

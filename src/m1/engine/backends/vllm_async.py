"""vLLM's async engine (`AsyncLLM`: continuous batching, its engine core in a child process) as a
backend that generates one sample per call, each call an asyncio task: what `m1 serve --backend
vllm` runs.

    backend = AsyncVLLMBackend("smollm2-135m", max_model_len=4096)
    await backend.start()
    record = await backend.generate_one(prompt, policy, request_id="r1", on_text=show, on_probe=show_probe)
    backend.shutdown()

A sample is the engine's round loop (`m1.engine.rounds.arun`); every round is one request of
token ids with that round's `max_tokens`, translated exactly as the offline backend translates it
(`VLLMRounds`), so a served request's record equals `m1 eval`'s, early-exit probes included. With
`on_text`, generated text streams token by token; text that may be the start of a stop is held
back until the round shows whether it is one. Cancelling the task (a client that left) aborts the
round in flight in the engine.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Sequence
from typing import Any

from m1.engine.backends.base import OnText, TextStream, load_tokenizer
from m1.engine.backends.vllm import VLLMRounds, apply_cpu_defaults, engine_args
from m1.engine.controller import GenerationRecord, ProbeResult
from m1.engine.policy import BudgetPolicy
from m1.engine.rounds import Generated, OnProbe, RoundRequest, arun, start_runs


class AsyncVLLMBackend:
    name = "vllm"

    def __init__(self, model: str = "smollm2-135m", *, dtype: str = "auto", max_model_len: int | None = None,
                 tensor_parallel_size: int = 1, enable_prefix_caching: bool = True, trust_remote_code: bool = False,
                 engine_options: dict[str, Any] | None = None):
        import torch

        on_gpu = torch.cuda.is_available()
        if not on_gpu:
            # Leave a core to this process (HTTP, tokenising, the round loop): with every core
            # bound, a round on a busy 2-core machine was measured 3.5x slower.
            cores = os.cpu_count() or 1
            if cores > 1:
                os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", f"0-{cores - 2}" if cores > 2 else "0")
            apply_cpu_defaults()
        self.options = engine_args(model, on_gpu=on_gpu, dtype=dtype, max_model_len=max_model_len,
                                   tensor_parallel_size=tensor_parallel_size,
                                   enable_prefix_caching=enable_prefix_caching, trust_remote_code=trust_remote_code,
                                   disable_log_stats=True, **(engine_options or {}))
        # The caller's copy (rendering, counting prompts); the rounds use the engine's own.
        self.tokenizer = load_tokenizer(self.options["model"], trust_remote_code=trust_remote_code)
        self.max_context = max_model_len or 0
        self.engine: Any = None
        self.rounds: VLLMRounds | None = None

    async def start(self) -> None:
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        self.engine = AsyncLLM.from_engine_args(AsyncEngineArgs(**self.options))
        self.max_context = self.engine.model_config.max_model_len
        self.rounds = VLLMRounds(self.engine.get_tokenizer())

    def shutdown(self) -> None:
        if self.engine is not None:
            self.engine.shutdown()

    async def prefill(self, prompt_ids: Sequence[int], *, request_id: str) -> None:
        """Encode a prompt into the prefix cache (one forward, one token generated and dropped).

        Requests that enter the engine in the same step all compute their prompt: none finds the
        others' blocks cached yet. Samples of one prompt that start after this share its prefill.
        """
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt
        from vllm.sampling_params import RequestOutputKind

        params = SamplingParams(max_tokens=1, temperature=0.0, output_kind=RequestOutputKind.FINAL_ONLY)
        async for _output in self.engine.generate(TokensPrompt(prompt_token_ids=list(prompt_ids)), params, request_id):
            pass

    async def generate_one(self, prompt: str, policy: BudgetPolicy, *, request_id: str,
                           choices: Sequence[str] | None = None, on_text: OnText | None = None,
                           on_probe: OnProbe | None = None) -> GenerationRecord:
        """One sample to the end (its index in the callbacks is 0); `prompt` may carry its ids (`.ids`)."""
        assert self.rounds is not None, "call start() first"
        run = start_runs([prompt], policy, choices=[choices], tokenizer=self.rounds.tokenizer,
                         stops=self.rounds.stops, max_context=self.max_context, keep_trace=True,
                         on_text=on_text, on_probe=on_probe, stream_generated=False)[0]
        round_ids = (f"{request_id}-{n}" for n in itertools.count())
        return await arun(run, lambda request: self._generate(run, request, next(round_ids), on_text))

    async def _generate(self, run: SampleRun, request: RoundRequest, request_id: str,
                        on_text: OnText | None) -> Generated | ProbeResult:
        from vllm.sampling_params import RequestOutputKind

        rounds = self.rounds
        assert rounds is not None
        params = rounds.params(request)
        streaming = on_text is not None and not request.is_probe
        params.output_kind = RequestOutputKind.DELTA if streaming else RequestOutputKind.FINAL_ONLY
        started = time.perf_counter()
        outputs = self.engine.generate(rounds.prompt(request), params, request_id)
        if not streaming:
            completion = None
            async for output in outputs:
                completion = output.outputs[0]
            return rounds.result(request, completion, time.perf_counter() - started)

        assert on_text is not None
        phase, stops = request.step.phase, request.step.stops
        stream = TextStream(rounds.tokenizer, lambda p, text, _inserted: on_text(0, p, text, False))
        # Each token is shown as it comes (holding tokens back delayed the first one by as many
        # engine steps), except one that ends the round by itself (end of sequence, a one-token
        # stop) and the lookahead past `keep`, which the round may be cut back from. The beginning
        # of a longer stop the stream holds back as text, from the token it begins in.
        ending = rounds.stops.ending_ids(stops)
        ids: list[int] = []
        positions: list[Any] = []  # logprobs, when the answer round asks for them
        finish, shown = None, 0
        async for output in outputs:
            completion = output.outputs[0]
            ids.extend(completion.token_ids)
            positions.extend(completion.logprobs or ())
            finish = completion.finish_reason
            while shown < min(len(ids), request.keep) and ids[shown] not in ending:
                stream.push(phase, ids[shown], stops)
                shown += 1
        result = Generated(ids, finish == "stop", logprobs=rounds.logprobs(request, ids, positions))
        kept, _, _ = run.kept(request, result)  # what the record keeps: a pause's tokens stay, a stop's go
        for token in kept[shown:]:
            stream.push(phase, token, stops)
        stream.end_round(rounds.tokenizer.decode(kept, skip_special_tokens=False))
        return result

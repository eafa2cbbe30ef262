"""`m1 serve`: an OpenAI- and Anthropic-compatible server with per-request thinking budgets and budget forcing.

    python -m m1.serving --model smollm2-135m --backend transformers --port 8000

    from openai import OpenAI
    client = OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="unused")
    reply = client.chat.completions.create(
        model="smollm2-135m", messages=[{"role": "user", "content": "What is 2+2?"}], max_tokens=64,
        extra_body={"thinking_budget": 512, "num_extensions": 2, "budget_preset": "m1"})
    reply.choices[0].message.reasoning_content   # the thinking ("Wait" rounds included)
    reply.choices[0].message.content             # the answer
    reply.usage.model_extra["m1"]                # thinking/answer/inserted tokens, extensions, why thinking ended

    # Early exit (adaptive thinking): probe the answer every 64 thinking tokens, stop once it has settled;
    # usage.m1 adds probes, probe_tokens, probe_seconds, tokens_saved (budget left at exit), exit_rule, trajectory.
    extra_body={"thinking_budget": 2048, "early_exit": {"method": "confidence", "threshold": 0.9,
                                                        "choices": ["A", "B", "C", "D"]}}
    extra_body={"thinking_budget": "auto"}       # the server's default (m1 serve --early-exit JSON_OR_FILE)
    stream=True, extra_body={..., "stream_probes": True}   # each probe live: chunk.model_extra["m1"]["probe"]

    # Anthropic's Messages API (POST /v1/messages), the official client unchanged but for base_url:
    from anthropic import Anthropic
    client = Anthropic(base_url="http://127.0.0.1:8000", api_key="unused")
    reply = client.messages.create(
        model="smollm2-135m", max_tokens=576, messages=[{"role": "user", "content": "What is 2+2?"}],
        thinking={"type": "enabled", "budget_tokens": 512}, extra_body={"num_extensions": 2})
    reply.content[0].thinking, reply.content[1].text   # the thinking block (an exact budget), the answer
    reply.usage.model_extra["m1"]                      # the same account as the OpenAI replies'

Every m1 request field is listed in `protocol`'s docstring, the Anthropic mapping in `anthropic`'s.
With an API key set (`M1_API_KEY`), send it as `api_key=` to either client.

Layout: `m1.engine.wire` translates between the wire and the engine (`protocol`: what a request
may ask for → prompt + `BudgetPolicy`; `responses`: reply bodies, usage, stream shaping;
`anthropic`: the Messages API in those terms); `runners` (dynamic batching on transformers,
vLLM's async engine), `app` (routes, auth and body dependencies, limits, `serve`).
"""

from __future__ import annotations

__all__ = ["create_app", "serve"]


def __getattr__(name: str):
    if name in __all__:
        from m1.serving import app

        return getattr(app, name)
    raise AttributeError(name)

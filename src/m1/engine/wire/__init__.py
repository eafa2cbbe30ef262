"""The wire formats clients speak, translated to and from the engine, with no web framework.

`protocol` reads a request body (strict JSON, typed fields, every m1 budget field) into a prompt
and a `BudgetPolicy`; `responses` turns a `GenerationRecord` into reply bodies, usage and stream
deltas; `anthropic` maps Anthropic's Messages API onto those two; `errors` is the refusal every
layer raises. `m1 serve` puts these behind HTTP routes, and
curation's in-process local engine answers chat bodies with the very same code, so a body means
the same thing whether it goes to a server or stays in the process.
"""

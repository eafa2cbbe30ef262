"""Medical multiple-choice data, one module per job.

`items` the record every layer passes (`MCQItem`); `tables` the containers files come in; `rows`
the checks every row passes; `upstream` the converters for the benchmarks' official releases;
`loaders` the format registry and `load_items`; `suite` the evaluation suite (build, convert,
load); `hub` the paper's training pools on the Hugging Face Hub.
"""

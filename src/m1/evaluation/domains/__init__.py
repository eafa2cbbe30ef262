"""Per-domain results: MeSH domain labels for the evaluation items.

    m1 label-domains configs/domains/local.yaml              # labelling.py: writes runs/domains/local.jsonl
    m1 eval CONFIG domains=runs/domains/local.jsonl          # the labels file is an input of the run

    labels = load_labels("runs/domains/local.jsonl")         # labels.py: uid -> domain, file, sha256

The breakdown by domain is the same code as by source (m1.evaluation.frontier, with a domain map
beside the source map; m1.evaluation.analysis). `labelling` (the command, built on the curation
classify stage and the eval runner's item selection) is imported from its own module, so that the
runner can import this package.
"""

from m1.evaluation.domains.labels import LABEL_FIELDS, Labels, label_line, load_labels, write_labels

__all__ = ["LABEL_FIELDS", "Labels", "label_line", "load_labels", "write_labels"]

"""Evaluation of saved runs: linear probes, zero-shot classification, retrieval and
captioning, chosen by name from a small registry (`registry`), run standalone
(`python -m audiolm_pt.evaluate`) or from the trainer's hook. Importing the package
registers every evaluator."""

from audiolm_pt.evaluate import (  # noqa: F401  (importing registers them)
    captioning,
    linear_probe,
    retrieval,
    zero_shot,
)

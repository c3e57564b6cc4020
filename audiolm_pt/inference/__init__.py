"""Inference shared by `audiolm_pt.api` and `audiolm_pt.evaluate`: a run rebuilt from its
directory (`run`), its parameters read from a checkpoint (`params`), deterministic batched
encoding and captioning (`batched`, `beam_search`). It imports nothing of the trainer or the
evaluators."""

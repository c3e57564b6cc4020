"""The captioning evaluator: captions generated with the KV cache by greedy decoding and beam
search, scored against every reference caption of the chosen styles, and a sample table
(id, reference, generated per beam size) in `DIR/eval/<step>_captions.tsv`."""

import csv
import os
from collections.abc import Sequence
from typing import Any

from audiolm_pt.evaluate.caption_metrics import caption_scores
from audiolm_pt.evaluate.context import Context
from audiolm_pt.evaluate.registry import register


def _write_samples(path: str, ids, references, generated: dict[int, list[str]]) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, delimiter="\t", lineterminator="\n")
        writer.writerow(["id", "reference", *(f"beam_{b}" for b in generated)])
        for i, clip_id in enumerate(ids):
            writer.writerow([clip_id, references[i][0], *(g[i] for g in generated.values())])


@register("captioning")
def captioning(
    context: Context,
    split: str = "test",
    beams: Sequence[int] = (1, 3),
    reference_styles: Sequence[str] = (),
    max_length: int | None = None,
    length_penalty: float = 1.0,
    meteor: bool = True,
) -> dict[str, Any]:
    """Per beam size (1 = greedy) the caption scores; `reference_styles` restricts the
    references (empty: every caption)."""
    inference = context.inference
    if context.features != "model" or not inference.has_decoder:
        return {"unavailable": "captioning needs a caption decoder"}
    clips = [
        c
        for c in context.clips(split)
        if any(not reference_styles or s in reference_styles for s in c.caption_styles)
    ]
    if not clips:
        return {"unavailable": f"no {split} clip has captions of styles {reference_styles}"}
    references = [
        [
            c
            for c, s in zip(clip.captions, clip.caption_styles, strict=True)
            if not reference_styles or s in reference_styles
        ]
        for clip in clips
    ]
    ids = [clip.id for clip in clips]
    tokenizer = context.run.tokenizer
    out: dict[str, Any] = {"num_clips": len(clips)}
    generated = {}
    for beam in beams:
        tokens = inference.generate(
            [clip.features for clip in clips], beam, max_length, length_penalty
        )
        generated[beam] = [tokenizer.decode(t) for t in tokens]
        out[f"beam_{beam}"] = caption_scores(
            dict(zip(ids, references, strict=True)),
            dict(zip(ids, generated[beam], strict=True)),
            meteor=meteor,
        )
    if context.run.step >= 0:
        path = os.path.join(context.run.workdir, "eval", f"{context.run.step}_captions.tsv")
        _write_samples(path, ids, references, generated)
        out["samples"] = path
    return out

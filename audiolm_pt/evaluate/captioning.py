"""The captioning evaluator: captions generated with the KV cache by greedy decoding and beam
search, scored against every reference caption of the chosen styles, a sample table (id,
first reference, generated per beam size) in `DIR/eval/<step>_captions.tsv`, and the log-mel
features of the first few clips with their captions in `DIR/eval/<step>_caption_samples.npz`
(`ids` [n], `features` float16 [n, T, mels] zero-padded, `num_frames` [n], `references` [n, R]
padded with "", `beam_<b>` [n]: plain arrays, readable without pickle)."""

import csv
from collections.abc import Sequence
from typing import Any

import numpy as np

from audiolm_pt.evaluate.caption_metrics import caption_scores
from audiolm_pt.evaluate.context import Context
from audiolm_pt.evaluate.data import Clip
from audiolm_pt.evaluate.registry import register


def _write_samples(path: str, ids, references, generated: dict[int, list[str]]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, delimiter="\t", lineterminator="\n")
        writer.writerow(["id", "reference", *(f"beam_{b}" for b in generated)])
        for i, clip_id in enumerate(ids):
            writer.writerow([clip_id, references[i][0], *(g[i] for g in generated.values())])


def write_feature_samples(
    path: str, clips: Sequence[Clip], references, generated: dict[int, list[str]]
) -> None:
    """Saves `clips` with their `references` and `generated` captions per beam size (lists
    that may run past the clips) in the npz layout given above."""
    n = len(clips)
    num_frames = np.asarray([len(c.features) for c in clips], np.int64)
    # float16: the precision the datasets store log-mels in, half the bytes per step.
    features = np.zeros((n, int(num_frames.max()), clips[0].features.shape[1]), np.float16)
    for i, clip in enumerate(clips):
        features[i, : num_frames[i]] = clip.features
    refs = np.full((n, max(len(r) for r in references[:n])), "", dtype=object)
    for i, r in enumerate(references[:n]):
        refs[i, : len(r)] = r
    np.savez_compressed(
        path,
        ids=np.asarray([c.id for c in clips], str),
        features=features,
        num_frames=num_frames,
        references=refs.astype(str),
        **{f"beam_{b}": np.asarray(g[:n], str) for b, g in generated.items()},
    )


@register("captioning")
def captioning(
    context: Context,
    split: str = "test",
    beams: Sequence[int] = (1, 3),
    reference_styles: Sequence[str] = (),
    max_length: int | None = None,
    length_penalty: float = 1.0,
    meteor: bool = True,
    num_feature_samples: int = 4,
) -> dict[str, Any]:
    """Per beam size (1 = greedy) the caption scores; `reference_styles` restricts the
    references (empty: every caption); the features of the first `num_feature_samples` clips
    are saved with their captions."""
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
    path = context.artefact_path("captions.tsv")
    if path is not None:
        _write_samples(path, ids, references, generated)
        out["samples"] = path
    path = context.artefact_path("caption_samples.npz")
    if path is not None and num_feature_samples > 0:
        write_feature_samples(path, clips[:num_feature_samples], references, generated)
        out["feature_samples"] = path
    return out

"""Text-to-audio and audio-to-text retrieval, the AudioCaps/Clotho protocol: every caption of
every clip is a text; text->audio queries have one relevant clip, audio->text queries have all
of their clip's captions relevant. R@1/5/10 and mAP@10 in both directions, and a few example
queries per direction with their top-ranked items in `DIR/eval/<step>_retrieval_examples.json`.
"""

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from audiolm_pt.evaluate import metrics
from audiolm_pt.evaluate.context import Context
from audiolm_pt.evaluate.registry import register


def ranked_examples(
    scores: np.ndarray, relevant: np.ndarray, num_queries: int, top_k: int
) -> list[dict[str, Any]]:
    """For `num_queries` queries spread evenly over the rows of scores/relevant [Q, N]: the
    query row, its `top_k` items (index, score, relevant) in the metrics' ranking (ties
    pessimistic), `hit` (a relevant item among them) and `rank` (1-based, first relevant)."""
    scores = np.asarray(scores, np.float64)
    relevant = np.asarray(relevant, bool)
    rows = np.unique(np.linspace(0, len(scores) - 1, min(num_queries, len(scores))).round())
    order = metrics.pessimistic_order(scores, relevant)
    examples = []
    for row in rows.astype(int):
        ranked = order[row]
        hits = relevant[row, ranked]
        top = [
            {"index": int(j), "score": float(scores[row, j]), "relevant": bool(relevant[row, j])}
            for j in ranked[:top_k]
        ]
        examples.append(
            {
                "query": int(row),
                "top": top,
                "hit": bool(hits[:top_k].any()),
                "rank": int(hits.argmax()) + 1,
            }
        )
    return examples


def example_queries(
    similarity: np.ndarray,
    caption_clip: np.ndarray,
    texts: Sequence[str],
    clip_ids: Sequence[str],
    num_examples: int,
    top_k: int,
) -> dict[str, Any]:
    """The retrieval examples file's content for similarity [captions, clips], caption i
    belonging to clip `caption_clip[i]`: example queries of both directions, with captions
    and clip ids in place of indices."""
    caption_clip = np.asarray(caption_clip)
    t2a = np.arange(similarity.shape[1])[None, :] == caption_clip[:, None]
    text_to_audio = [
        {
            "query": texts[e["query"]],
            "query_clip": clip_ids[caption_clip[e["query"]]],
            "retrieved": [
                {"clip": clip_ids[t["index"]], "score": t["score"], "relevant": t["relevant"]}
                for t in e["top"]
            ],
            "hit": e["hit"],
            "rank": e["rank"],
        }
        for e in ranked_examples(similarity, t2a, num_examples, top_k)
    ]
    audio_to_text = [
        {
            "query_clip": clip_ids[e["query"]],
            "retrieved": [
                {
                    "caption": texts[t["index"]],
                    "clip": clip_ids[caption_clip[t["index"]]],
                    "score": t["score"],
                    "relevant": t["relevant"],
                }
                for t in e["top"]
            ],
            "hit": e["hit"],
            "rank": e["rank"],
        }
        for e in ranked_examples(similarity.T, t2a.T, num_examples, top_k)
    ]
    return {"top_k": top_k, "text_to_audio": text_to_audio, "audio_to_text": audio_to_text}


@register("retrieval")
def retrieval(
    context: Context,
    split: str = "test",
    caption_styles: Sequence[str] = (),
    num_examples: int = 8,
    top_k: int = 5,
) -> dict[str, Any]:
    """`caption_styles` restricts the texts to those styles (empty: every caption);
    `num_examples` queries per direction are saved with their `top_k` items."""
    if context.features != "model" or not context.inference.has_text:
        return {"unavailable": "retrieval needs a text encoder"}
    clips = context.clips(split)
    texts, owner = [], []
    for i, clip in enumerate(clips):
        for caption, style in zip(clip.captions, clip.caption_styles, strict=True):
            if not caption_styles or style in caption_styles:
                texts.append(caption)
                owner.append(i)
    owned = sorted(set(owner))
    if len(owned) < 2:
        return {"unavailable": f"fewer than two {split} clips have captions"}
    encoded = context.encoded(split)
    audio = np.stack([encoded[i].embedding for i in owned])
    remap = {clip: row for row, clip in enumerate(owned)}
    caption_clip = np.asarray([remap[i] for i in owner])
    similarity = np.asarray(context.inference.embed_text(texts), np.float64) @ audio.T
    out = {
        "text_to_audio": metrics.text_to_audio(similarity, caption_clip),
        "audio_to_text": metrics.audio_to_text(similarity.T, caption_clip),
        "num_clips": len(owned),
        "num_captions": len(texts),
        "chance_R@1": 1.0 / len(owned),
    }
    path = context.artefact_path("retrieval_examples.json")
    if path is not None and num_examples > 0:
        clip_ids = [clips[i].id for i in owned]
        examples = example_queries(similarity, caption_clip, texts, clip_ids, num_examples, top_k)
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"split": split, **examples}, f, indent=1)
        out["examples"] = path
    return out

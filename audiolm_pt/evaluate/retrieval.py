"""Text-to-audio and audio-to-text retrieval, the AudioCaps/Clotho protocol: every caption of
every clip is a text; text->audio queries have one relevant clip, audio->text queries have all
of their clip's captions relevant. R@1/5/10 and mAP@10 in both directions."""

from collections.abc import Sequence
from typing import Any

import numpy as np

from audiolm_pt.evaluate import metrics
from audiolm_pt.evaluate.context import Context
from audiolm_pt.evaluate.registry import register


@register("retrieval")
def retrieval(
    context: Context, split: str = "test", caption_styles: Sequence[str] = ()
) -> dict[str, Any]:
    """`caption_styles` restricts the texts to those styles (empty: every caption)."""
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
    return {
        "text_to_audio": metrics.text_to_audio(similarity, caption_clip),
        "audio_to_text": metrics.audio_to_text(similarity.T, caption_clip),
        "num_clips": len(owned),
        "num_captions": len(texts),
        "chance_R@1": 1.0 / len(owned),
    }

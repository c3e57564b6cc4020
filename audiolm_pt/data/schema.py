"""The example format shared by the dataset builders (writers) and the input pipeline (reader).

One decoded example is a dict with these keys:

- ``id`` (str): unique within its source dataset.
- ``source`` (str): dataset name, e.g. ``demo``, ``audiocaps``, ``clotho``, ``wavcaps``.
- ``features`` (float16 [num_frames, n_mels]): the dataset's front-end features (Kaldi fbank
  or log-mel: the dataset's metadata names the front end and its options); no frames when the
  builder stored only the waveform.
- ``num_frames`` (int32): the front end's frame count of the clip.
- ``waveform`` (bytes): the resampled audio as 16-bit FLAC, for features computed in the
  pipeline or on the accelerator; empty unless the builder was asked to store it.
- ``captions`` (list[str]): every caption of the clip.
- ``caption_styles`` (list[str]): the style of each caption, one of ``CAPTION_STYLES``.
- ``label_keys`` / ``label_values`` (list[str]): parallel lists of (task, label) pairs; a task
  may repeat for multi-label clips (e.g. several event categories in a mixture).
"""

CAPTION_STYLES = ("tags", "short", "long", "transcript")

FEATURE_KEYS = (
    "id",
    "source",
    "features",
    "num_frames",
    "waveform",
    "captions",
    "caption_styles",
    "label_keys",
    "label_values",
)


def labels_of(example: dict) -> dict[str, list[str]]:
    """Groups an example's parallel label lists into {task: [labels...]}."""
    grouped: dict[str, list[str]] = {}
    for key, value in zip(example["label_keys"], example["label_values"], strict=True):
        grouped.setdefault(_text(key), []).append(_text(value))
    return grouped


def _text(value: str | bytes) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


# The batch the input pipeline hands the trainer (leading axis = per-host batch):
BATCH_KEYS = {
    "features": "float32 [B, T, n_mels] log-mel frames, cropped/padded to T",
    "feature_mask": "bool [B, T] True on valid frames",
    "text_tokens": "int32 [B, L] caption tokens for the text encoder, BOS + caption + EOS",
    "text_mask": "bool [B, L]",
    "decoder_inputs": "int32 [B, L] BOS + caption tokens (teacher forcing input)",
    "decoder_targets": "int32 [B, L] caption tokens + EOS",
    "decoder_mask": "bool [B, L] True on target positions that count",
    "labels": "float32 [B, num_labels] multi-hot over the tagging vocabulary (optional)",
}

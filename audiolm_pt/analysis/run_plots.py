"""The run-inspection notebook's figures: loss terms and learning rate against step, log-mel
spectrograms with their reference and generated captions, and zero-shot confusion matrices."""

import math
import textwrap

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure


def loss_lr_figure(train: pd.DataFrame, heldout: pd.DataFrame | None = None) -> Figure:
    """Left: `loss` and every `*_loss` term, and the held-out loss (columns step, loss) when
    given; right: the learning rate."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.4))
    terms = ["loss", *sorted(c for c in train.columns if c.endswith("_loss") and c != "loss")]
    for name in terms:
        left.plot(train["step"], train[name], lw=1.2 if name == "loss" else 0.8, label=name)
    if heldout is not None and len(heldout):
        left.plot(heldout["step"], heldout["loss"], "ko--", ms=3, lw=0.8, label="held-out loss")
    left.set(title="training loss", xlabel="step", ylabel="loss")
    left.grid(alpha=0.3)
    left.legend(fontsize=7)
    if "lr" in train:
        right.plot(train["step"], train["lr"])
    right.set(title="learning rate", xlabel="step", ylabel="lr")
    right.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def caption_samples_figure(samples: dict[str, np.ndarray], frame_hop_s: float = 0.01) -> Figure:
    """One row per saved clip: its log-mel spectrogram, titled with the clip id, the
    references and each generated caption."""
    beams = sorted(k for k in samples if k.startswith("beam_"))
    n = len(samples["ids"])
    fig, axes = plt.subplots(n, 1, figsize=(10, 3.2 * n), squeeze=False)
    for i, ax in enumerate(axes[:, 0]):
        frames = samples["features"][i, : samples["num_frames"][i]]
        ax.imshow(
            frames.T,
            origin="lower",
            aspect="auto",
            cmap="magma",
            extent=(0, len(frames) * frame_hop_s, 0, frames.shape[1]),
        )
        refs = [r for r in samples["references"][i] if r]
        lines = [f"reference: {r}" for r in refs] + [f"{b}: {samples[b][i]}" for b in beams]
        wrapped = "\n".join(textwrap.shorten(line, 110) for line in lines)
        ax.set_title(f"{samples['ids'][i]}\n{wrapped}", fontsize=8, loc="left")
        ax.set(xlabel="time (s)", ylabel="mel bin")
    fig.tight_layout()
    return fig


def confusion_figure(confusions: dict[str, dict]) -> Figure:
    """One heat map per task, coloured by the row-normalised rate, annotated with counts."""
    if not confusions:
        raise ValueError("no confusion counts to draw")
    n = len(confusions)
    cols = min(n, 2)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.5 * cols, 5.0 * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    for ax, (task, c) in zip(axes.flat, confusions.items(), strict=False):
        counts = c["counts"]
        rate = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
        ax.imshow(rate, cmap="Blues", vmin=0, vmax=1)
        for (r, k), value in np.ndenumerate(counts):
            if value:
                color = "white" if rate[r, k] > 0.5 else "black"
                ax.text(k, r, str(value), ha="center", va="center", fontsize=7, color=color)
        ticks = range(len(c["classes"]))
        ax.set_xticks(ticks, c["classes"], rotation=90, fontsize=7)
        ax.set_yticks(ticks, c["classes"], fontsize=7)
        ax.set(xlabel="predicted", ylabel="true", title=f"{task} (accuracy {c['accuracy']:.3f})")
    fig.tight_layout()
    return fig

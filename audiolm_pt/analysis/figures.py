"""Saving the notebooks' figures: one PNG per figure, the figure then closed so a notebook
shows the saved file (the same image headless and in Jupyter) and memory stays flat."""

import os

import matplotlib.pyplot as plt
from matplotlib.figure import Figure


def save(fig: Figure, fig_dir: str, name: str) -> str:
    """Writes `fig_dir/name.png` (folder created), closes `fig`; returns the path."""
    os.makedirs(fig_dir, exist_ok=True)
    path = os.path.join(fig_dir, f"{name}.png")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path

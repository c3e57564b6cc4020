"""Classification tasks read from dataset labels: which clips have the label, the class list
(from the training split), and multi-hot targets. A task is multi-label when some clip carries
several values of its label key."""

import dataclasses
from collections.abc import Sequence

import numpy as np

from audiolm_pt.evaluate.data import Clip

# The demo corpus's probe tasks: speech (language, voice, speed), music (instrument family,
# tempo) and sound (event category).
DEMO_TASKS = ("language", "voice", "speed", "instrument_family", "tempo", "event_category")


@dataclasses.dataclass(frozen=True)
class LabelTask:
    name: str
    classes: tuple[str, ...]
    multi_label: bool

    @classmethod
    def from_clips(cls, name: str, clips: Sequence[Clip]) -> "LabelTask":
        values = [c.labels[name] for c in clips if name in c.labels]
        if not values:
            raise ValueError(f"task {name!r}: no clip has that label")
        classes = tuple(sorted({v for vs in values for v in vs}))
        return cls(name, classes, any(len(set(vs)) > 1 for vs in values))


@dataclasses.dataclass(frozen=True)
class Targets:
    """Rows `index` of a clip list, their multi-hot targets [n, C], and how many clips with
    the label were left out because none of their labels is a known class."""

    index: np.ndarray
    multi_hot: np.ndarray
    unseen: int

    @property
    def single(self) -> np.ndarray:
        return np.argmax(self.multi_hot, axis=1)


def targets(task: LabelTask, clips: Sequence[Clip]) -> Targets:
    lookup = {c: i for i, c in enumerate(task.classes)}
    rows, hot, unseen = [], [], 0
    for i, clip in enumerate(clips):
        labels = [lookup[v] for v in clip.labels.get(task.name, ()) if v in lookup]
        if task.name in clip.labels and not labels:
            unseen += 1
        if labels:
            row = np.zeros(len(task.classes), np.float32)
            row[labels] = 1.0
            rows.append(i)
            hot.append(row)
    multi_hot = np.stack(hot) if hot else np.zeros((0, len(task.classes)), np.float32)
    return Targets(np.asarray(rows, np.int64), multi_hot, unseen)

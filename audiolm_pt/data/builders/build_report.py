"""Counts of everything a build skipped, dropped or adjusted, by reason, with example ids."""

import json
import time
from pathlib import Path

# skipped_clips: clip not written; malformed_rows: manifest rows that are not clips;
# dropped_captions / dropped_labels: removed from a clip that may still be written;
# long_clips: clips windowed or truncated; long_captions: captions kept whole although the
# tokenizer reads only their first max_text_len tokens (neither is an error).
CATEGORIES = (
    "skipped_clips",
    "malformed_rows",
    "dropped_captions",
    "dropped_labels",
    "long_clips",
    "long_captions",
)


class BuildReport:
    """Accumulates the report of one split's build; ``to_dict`` gives its JSON form."""

    def __init__(self, name: str, split: str, max_ids: int = 10):
        self.name = name
        self.split = split
        self.max_ids = max_ids
        self.reasons: dict[str, dict[str, dict]] = {c: {} for c in CATEGORIES}
        self.totals = {
            "clips_read": 0,
            "clips_written": 0,
            "examples_written": 0,
            "audio_seconds_written": 0.0,
        }
        self._start = time.monotonic()

    def count(self, category: str, reason: str, item_id: str) -> None:
        entry = self.reasons[category].setdefault(reason, {"count": 0, "ids": []})
        entry["count"] += 1
        if len(entry["ids"]) < self.max_ids:
            entry["ids"].append(item_id)

    def total(self, category: str) -> int:
        return sum(e["count"] for e in self.reasons[category].values())

    def to_dict(self) -> dict:
        seconds = time.monotonic() - self._start
        totals = dict(self.totals)
        totals["clips_skipped"] = self.total("skipped_clips")
        totals["malformed_rows"] = self.total("malformed_rows")
        totals["captions_dropped"] = self.total("dropped_captions")
        totals["seconds"] = round(seconds, 3)
        totals["clips_per_second"] = round(totals["clips_read"] / max(seconds, 1e-9), 2)
        totals["audio_seconds_written"] = round(totals["audio_seconds_written"], 3)
        reasons = {c: dict(sorted(r.items())) for c, r in self.reasons.items()}
        return {"name": self.name, "split": self.split, "totals": totals, **reasons}


def write_report(report: dict, directory: Path) -> Path:
    path = Path(directory) / f"build_report.{report['split']}.json"
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    return path


def format_table(report: dict) -> str:
    """A plain-text table of a report dict, for the console."""
    lines = [f"build report: {report['name']} / {report['split']}"]
    lines += [f"  {k:<24}{v}" for k, v in report["totals"].items()]
    for category in CATEGORIES:
        for reason, entry in report[category].items():
            ids = ", ".join(entry["ids"])
            lines.append(f"  {category + '/' + reason:<40}{entry['count']:>8}  e.g. {ids}")
    return "\n".join(lines)

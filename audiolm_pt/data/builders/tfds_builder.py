"""The TFDS builder that writes a source corpus as ArrayRecord examples of ``data.schema``.

One builder class serves every corpus: ``make_builder`` names a subclass after the dataset
(so it lands in ``<data_dir>/<name>/<version>``) and the build options travel with the
instance. Bad clips are skipped and counted; each split's report is written next to the
dataset as ``build_report.<split>.json``.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import numpy as np
import tensorflow_datasets as tfds

from audiolm_pt.data.builders.build_report import BuildReport, format_table, write_report
from audiolm_pt.data.builders.features import FeatureJob, Window, extract
from audiolm_pt.data.builders.formats import FORMATS
from audiolm_pt.data.builders.options import BuildOptions
from audiolm_pt.data.builders.parallel import ordered_map, worker_pool
from audiolm_pt.data.builders.records import (
    ClipRecord,
    MalformedRow,
    caption_note,
    caption_problem,
    is_utf8,
)

DATASET_VERSION = "2.0.0"


def features_dict(n_mels: int) -> tfds.features.FeaturesDict:
    text = tfds.features.Text()
    # Raw bytes keep float16/int16 at 2 bytes a value; the default stores them as
    # tf.train.Example float/int64 lists (twice the size or more, and slow to serialize).
    raw = tfds.features.Encoding.BYTES
    return tfds.features.FeaturesDict(
        {
            "id": text,
            "source": text,
            "features": tfds.features.Tensor(shape=(None, n_mels), dtype=np.float16, encoding=raw),
            "num_frames": tfds.features.Scalar(dtype=np.int32),
            "waveform": tfds.features.Tensor(shape=(), dtype=np.object_),
            "captions": tfds.features.Sequence(text),
            "caption_styles": tfds.features.Sequence(text),
            "label_keys": tfds.features.Sequence(text),
            "label_values": tfds.features.Sequence(text),
        }
    )


class AudioCaptionBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Audio–caption corpus → features and/or FLAC waveform, captions with styles, labels."""

    VERSION = tfds.core.Version(DATASET_VERSION)
    RELEASE_NOTES: ClassVar[dict[str, str]] = {
        "1.0.0": "Kaldi fbank float16, captions with styles, labels.",
        DATASET_VERSION: "Selectable front end (fbank or log-mel) under `features`; the "
        "waveform as FLAC bytes; features optional.",
    }

    def __init__(self, *, options: BuildOptions, **kwargs):
        self.options = options
        self.reports: dict[str, dict] = {}
        self._pool = None
        super().__init__(file_format="array_record", **kwargs)

    def download_and_prepare(self, **kwargs) -> None:
        # One pool for every split: spawning workers costs seconds each time.
        with worker_pool(self.options.workers) as self._pool:
            super().download_and_prepare(**kwargs)
        self._pool = None

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=f"{self.options.format} corpus from {self.options.source_dir}",
            features=features_dict(self.options.frontend_config.n_mels),
            metadata=tfds.core.MetadataDict(self.options.metadata()),
        )

    def _split_generators(self, dl_manager):
        return {split: self._generate_examples(split) for split in self.options.splits_to_build()}

    def _generate_examples(self, split: str) -> Iterator[tuple[str, dict]]:
        opts = self.options
        report = BuildReport(opts.name, split, opts.max_report_ids)
        clips = _usable_clips(FORMATS[opts.format].read(opts.source_dir, split, opts), report)
        jobs = ((clip, _job(clip[0], opts)) for clip in clips)
        # Window ids (<id>#w<k>) may collide with a clip's own id; TFDS would only notice
        # after the whole split was generated, and fail.
        written: set[str] = set()
        for (record, captions, labels), result in ordered_map(
            extract, jobs, self._pool, 4 * opts.workers
        ):
            example_ids = [record.id + window.suffix for window in result.windows]
            if result.skip or written.intersection(example_ids):
                report.count("skipped_clips", result.skip or "duplicate_id", record.id)
                continue
            written.update(example_ids)
            if result.long_clip:
                report.count("long_clips", result.long_clip, record.id)
            report.totals["clips_written"] += 1
            for example_id, window in zip(example_ids, result.windows, strict=True):
                report.totals["examples_written"] += 1
                report.totals["audio_seconds_written"] += window.seconds
                yield example_id, _example(example_id, opts.name, window, captions, labels)
        self.reports[split] = report.to_dict()


def _example(example_id: str, source: str, window: Window, captions, labels) -> dict:
    return {
        "id": example_id,
        "source": source,
        "features": window.features,
        "num_frames": window.num_frames,
        "waveform": window.waveform,
        "captions": [text for text, _ in captions],
        "caption_styles": [style for _, style in captions],
        "label_keys": [key for key, _ in labels],
        "label_values": [value for _, value in labels],
    }


def _usable_clips(items, report: BuildReport) -> Iterator[tuple[ClipRecord, list, list]]:
    """(clip, usable captions, usable labels) for each record worth decoding; counts the rest."""
    seen: set[str] = set()
    for item in items:
        if isinstance(item, MalformedRow):
            report.count("malformed_rows", item.why, item.where)
            continue
        report.totals["clips_read"] += 1
        if not is_utf8(item.id):
            report.count("skipped_clips", "non_utf8_id", repr(item.id))
            continue
        if item.id in seen:
            report.count("skipped_clips", "duplicate_id", item.id)
            continue
        seen.add(item.id)
        captions = []
        for text, style in item.captions:
            problem = caption_problem(text, style)
            if problem:
                report.count("dropped_captions", problem, item.id)
                continue
            captions.append((text.strip(), style))
            note = caption_note(text.strip())
            if note:
                report.count("long_captions", note, item.id)
        labels = []
        for key, value in item.labels:
            if is_utf8(key) and is_utf8(value):
                labels.append((key, value))
            else:
                report.count("dropped_labels", "non_utf8", item.id)
        if captions:
            yield item, captions, labels
        else:
            report.count("skipped_clips", "no_usable_caption", item.id)


def _job(record: ClipRecord, opts: BuildOptions) -> FeatureJob:
    return FeatureJob(
        audio=record.audio,
        frontend=opts.frontend_config,
        max_seconds=opts.max_seconds,
        long_clip_policy=opts.long_clip_policy,
        store_waveform=opts.store_waveform,
        store_features=opts.store_features,
        start=record.start,
        duration=record.duration,
        expected_seconds=record.expected_seconds,
    )


def make_builder(options: BuildOptions, data_dir: str | Path) -> AudioCaptionBuilder:
    """A builder for ``options`` whose dataset lives in ``<data_dir>/<options.name>``."""
    if options.name in tfds.list_builders(with_community_datasets=False):
        # tfds.data_source(name, data_dir=...) would load the catalogue's class, not ours.
        raise ValueError(
            f"build option name={options.name!r}: clashes with a TFDS catalogue dataset; "
            "choose another name"
        )
    cls = type(
        f"AudioCaptionBuilder_{options.name}", (AudioCaptionBuilder,), {}, skip_registration=True
    )
    cls.name = options.name
    return cls(options=options, data_dir=str(data_dir))


def build_dataset(
    source_dir: str | Path,
    data_dir: str | Path,
    *,
    format: str = "demo",
    overwrite: bool = False,
    **options,
) -> tfds.core.DatasetBuilder:
    """Builds (or, unless ``overwrite``, reuses) the dataset; returns its TFDS builder.

    ``options`` are the other ``BuildOptions`` fields (name, max_seconds, long_clip_policy,
    store_waveform, store_features, workers, caption_style, audio_patterns, splits, frontend,
    fbank, log_mel, max_report_ids).
    Writes ``build_report.<split>.json`` beside the dataset and prints each as a table.
    """
    builder = make_builder(BuildOptions(source_dir=source_dir, format=format, **options), data_dir)
    mode = tfds.download.GenerateMode
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(
            download_mode=mode.REUSE_DATASET_IF_EXISTS if not overwrite else mode.FORCE_REDOWNLOAD
        )
    )
    for report in builder.reports.values():
        write_report(report, Path(builder.data_path))
        print(format_table(report))
    if not builder.reports:
        print(f"{builder.data_path} exists; kept it (overwrite=True rebuilds it)")
    return builder


def open_dataset(
    data_dir: str | Path, name: str, version: str = DATASET_VERSION
) -> tfds.core.DatasetBuilder:
    """A read-only builder of a built dataset (no source corpus or options needed)."""
    return tfds.builder_from_directory(str(Path(data_dir) / name / version))

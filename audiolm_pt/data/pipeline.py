"""The Grain input pipeline: sources → shuffle/repeat/mix → per-example processing → shard by
JAX process → batches, with a checkpointable iterator that counts skipped records.

Order of the stream (``MapDataset``, so every position is addressable and state is an index):
each source is globally shuffled (reshuffled each epoch) and repeated, sources are mixed with
``mixture_weights``, every position is processed with randomness seeded by (seed, position),
then process ``p`` of ``P`` takes positions ``p, p+P, ...``. Process ``p``'s k-th batch and
those of the other processes together hold positions ``[k·G, (k+1)·G)`` of the single-process
stream (G = global batch), less skipped records.

With ``data_fraction`` < 1 a training source is first cut to a nested subset (see
``PipelineConfig``); ``source_sizes`` reports what each source kept.

Batches are numpy dicts with the keys of ``schema.BATCH_KEYS`` (text keys when a tokenizer is
configured, ``labels`` when a label task is); with ``feature_source="device"`` the audio keys
are ``waveform``/``num_frames`` instead of ``features``/``feature_mask`` (see
``data.device_features``). With ``bucket_frames`` a batch's frame axis is the smallest bucket
holding its longest clip; hosts may then differ, so multi-host trainers agree on the largest
``batch_frames`` and call ``pad_frames`` (or leave buckets off).
"""

import collections
import dataclasses
import hashlib
import json
import logging
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import grain
import jax
import numpy as np
from absl import flags
from grain._src.python.dataset.transformations import process_prefetch

from audiolm_pt.audio import frontend
from audiolm_pt.data import transforms
from audiolm_pt.data.parent_watch import exit_with_parent
from audiolm_pt.data.pipeline_config import PipelineConfig, kept_records, split_label_tasks
from audiolm_pt.data.processing import ExampleProcessor, Processed, task_labels
from audiolm_pt.text import Tokenizer, load_tokenizer

log = logging.getLogger(__name__)
# Grain passes arrays at least this large through shared memory: never, here (see below).
_NO_SHARED_MEMORY = 2**62
# How long closing the stream waits for a worker to exit before Grain kills it (Grain's own
# wait is 25 s). A worker stopped mid-stream often cannot exit by itself: its queue's feeder
# thread is still writing a pickled batch into a pipe the closed parent no longer reads, and
# the process joins that thread at exit. It holds nothing the parent still needs (the data
# position lives in the parent's iterator state), so every training job lost 25 s at its end
# waiting to kill it.
WORKER_STOP_SECONDS = 3


def make_dataset(
    sources: Mapping[str, Sequence[Any]],
    cfg: PipelineConfig,
    *,
    tokenizer: Tokenizer | None = None,
    process_index: int | None = None,
    process_count: int | None = None,
    start_batch: int = 0,
) -> grain.IterDataset:
    """The per-host batch stream. ``sources`` maps dataset names to random-access sources of
    ``schema`` examples (``tfds`` data sources, ``grain`` sources, lists); ``tokenizer``
    overrides ``cfg.tokenizer``; the stream starts at global batch ``start_batch``. Each
    element is a (batch, skip counts) pair; iterate ``make_iterator`` instead unless
    composing further."""
    process_index = jax.process_index() if process_index is None else process_index
    process_count = jax.process_count() if process_count is None else process_count
    batch_size = cfg.per_host_batch_size(process_count)
    if tokenizer is None and cfg.tokenizer:
        tokenizer = load_tokenizer(cfg.tokenizer)
    check_sources(sources, cfg)
    stream = _mixed_stream(sources, cfg)
    processor = ExampleProcessor(stream, cfg, tokenizer)
    rows = _HostRows(len(stream), cfg.global_batch_size, process_index, process_count)
    positions = grain.MapDataset.range(start_batch * rows.per_host, len(rows)).map(rows)
    read = grain.ReadOptions(
        num_threads=cfg.resolved_read_threads(), prefetch_buffer_size=cfg.read_buffer_size
    )
    ds = positions.map(processor).to_iter_dataset(read)
    # One pass over every source's kept records on this host: a stream that skips that many
    # in a row has nothing usable, and would otherwise spin for ever in training.
    one_pass = sum(s["kept"] for s in source_sizes(sources, cfg).values())
    ds = CountingBatchDataset(
        ds,
        batch_size,
        _Collate(cfg),
        drop_remainder=cfg.train,
        max_consecutive_skips=-(-one_pass // process_count),
    )
    workers = cfg.resolved_num_workers()
    if workers:
        # Grain's worker start-up reads an absl flag; outside absl.app nothing parsed them.
        if not flags.FLAGS.is_parsed():
            flags.FLAGS.mark_as_parsed()
        options = grain.MultiprocessingOptions(
            num_workers=workers, per_worker_buffer_size=cfg.worker_buffer_size
        )
        # Batches cross from the workers by pickling, not shared memory: the trainer hands
        # them to JAX, which may alias host buffers, so shared-memory blocks outlived their
        # batches and leaked at exit (a few MB a batch: the copy costs milliseconds).
        no_shm = grain.experimental.DatasetOptions(min_shm_size=_NO_SHARED_MEMORY)
        process_prefetch._PROCESS_KILL_TIMEOUT_S = WORKER_STOP_SECONDS
        ds = grain.experimental.WithOptionsIterDataset(ds, no_shm).mp_prefetch(
            options, worker_init_fn=exit_with_parent
        )
    return ds


def make_iterator(
    sources: Mapping[str, Sequence[Any]], cfg: PipelineConfig, **kwargs: Any
) -> "BatchIterator":
    """An iterator of per-host batches; ``get_state``/``set_state`` (or
    ``grain.checkpoint.CheckpointSave``/``CheckpointRestore`` in Orbax) resume it exactly;
    ``seek(k)`` moves it to global batch k from the position alone (a resume with another
    process count); ``skipped`` counts records left out, by reason. Close it (``close()``)
    when done."""
    return BatchIterator(
        lambda start: make_dataset(sources, cfg, start_batch=start, **kwargs).__iter__()
    )


class DatasetNotFoundError(FileNotFoundError):
    """No built dataset of that name where the data_dir points (one line, unlike TFDS's)."""


def tfds_source(name: str, split: str, data_dir: str | None = None) -> Sequence[Any]:
    """Random access to a built TFDS dataset's ArrayRecord split; `DatasetNotFoundError`
    names the directory and the flags that set it when the dataset is not there."""
    import tensorflow_datasets as tfds  # slow import, needed only here

    try:
        return tfds.data_source(name, split=split, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        # TFDS's own message lists its whole catalogue (hundreds of lines).
        raise DatasetNotFoundError(
            f"no dataset {name!r} in data_dir={data_dir!r}: build it there (python -m "
            "audiolm_pt.data.builders) or point to it (--config.data.data_dir for training, "
            "--data_dir for evaluation)"
        ) from None


def source_sizes(
    sources: Mapping[str, Sequence[Any]], cfg: PipelineConfig
) -> dict[str, dict[str, Any]]:
    """{source: {"records": n, "kept": records the stream reads, "fraction": data_fraction,
    "fingerprint": of a TFDS split's name, bytes and shard lengths (None for other sources)}}."""
    fraction = cfg.data_fraction if cfg.train else 1.0
    return {
        name: {
            "records": len(source),
            "kept": kept_records(len(source), fraction),
            "fraction": fraction,
            "fingerprint": _fingerprint(source),
        }
        for name, source in sorted(sources.items())
    }


def _fingerprint(source: Any) -> str | None:
    info, split = getattr(source, "dataset_info", None), getattr(source, "split", None)
    if info is None or split is None:
        return None
    details = info.splits[split]
    text = json.dumps([info.full_name, split, int(details.num_bytes), list(details.shard_lengths)])
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def caption_texts(sources: Mapping[str, Sequence[Any]], cfg: PipelineConfig) -> list[str]:
    """Every caption the stream of ``cfg`` can draw from ``sources``: the captions of a style
    of positive weight, of each source's kept records (records that cannot be read are left
    for the stream to skip and count)."""
    out = []
    for name, source in sorted(sources.items()):
        if cfg.train and cfg.data_fraction < 1.0:
            source = _fraction_of(source, name, cfg)
        for i in range(len(source)):
            try:
                record = source[i]
                pairs = list(zip(record["captions"], record["caption_styles"], strict=True))
            except Exception:  # the stream counts it when it meets it
                continue
            weights = cfg.caption_style_weights
            out.extend(
                transforms.as_str(c) for c, s in pairs if weights.get(transforms.as_str(s), 0) > 0
            )
    return out


def label_vocab(records: Iterable[Mapping[str, Any]], label_task: str) -> tuple[str, ...]:
    """The sorted tagging vocabulary of ``label_task`` (one task or several, comma-separated;
    see ``PipelineConfig``) over ``records``, e.g. a ``tfds_source`` training split."""
    tasks = split_label_tasks(label_task)
    if not tasks:
        raise ValueError("label_vocab needs a label task")
    return tuple(sorted({label for record in records for label in task_labels(record, tasks)}))


def batch_frames(batch: Mapping[str, np.ndarray], cfg: PipelineConfig) -> int:
    """The frame count a batch is padded to (its bucket)."""
    if "features" in batch:
        return batch["features"].shape[1]
    fe = cfg.frontend_config
    return (batch["waveform"].shape[1] - frontend.segment_length(1, fe)) // frontend.hop(fe) + 1


def pad_frames(
    batch: dict[str, np.ndarray], num_frames: int, cfg: PipelineConfig
) -> dict[str, np.ndarray]:
    """``batch`` with its frame axis zero-padded to ``num_frames`` (at least its own)."""
    own = batch_frames(batch, cfg)
    if own > num_frames:
        raise ValueError(f"batch has {own} frames > {num_frames}")
    out = dict(batch)
    if "features" in batch:
        extra = num_frames - own
        out["features"] = np.pad(batch["features"], ((0, 0), (0, extra), (0, 0)))
        out["feature_mask"] = np.pad(batch["feature_mask"], ((0, 0), (0, extra)))
    else:
        samples = frontend.segment_length(num_frames, cfg.frontend_config)
        extra = samples - batch["waveform"].shape[1]
        out["waveform"] = np.pad(batch["waveform"], ((0, 0), (0, extra)))
    return out


def check_sources(sources: Mapping[str, Sequence[Any]], cfg: PipelineConfig) -> None:
    """Refuses, before reading a record, built TFDS datasets whose stored audio cannot give
    what ``cfg`` asks for: features of another front end or options, no stored features, or
    no waveform. Other sources (lists, Grain sources) carry no such description."""
    for name, source in sorted(sources.items()):
        info = getattr(source, "dataset_info", None)
        if info is None:
            continue
        meta = dict(info.metadata or {})
        problem = _source_problem(meta, cfg)
        if problem:
            raise ValueError(f"data source {name!r}: {problem}")


def _source_problem(meta: Mapping[str, Any], cfg: PipelineConfig) -> str | None:
    if "frontend" not in meta:
        return "built by an older version (no front end recorded): rebuild it"
    wanted = dataclasses.asdict(cfg.frontend_config)
    if cfg.feature_source == "stored":
        if not meta.get("store_features", True):
            return (
                "stores no features; set data.pipeline.feature_source to host or device "
                "(its waveform is stored)"
            )
        if meta["frontend"] != cfg.frontend:
            return f"stores {meta['frontend']} features but data.pipeline.frontend={cfg.frontend!r}"
        stored = dict(meta.get("frontend_options", {}))
        diff = sorted(k for k in wanted if stored.get(k, wanted[k]) != wanted[k])
        if diff:
            key = diff[0]
            return (
                f"its {cfg.frontend} features have {key}={stored[key]!r} but "
                f"data.pipeline.{cfg.frontend}.{key}={wanted[key]!r}"
            )
        return None
    if not meta.get("store_waveform"):
        return (
            f"data.pipeline.feature_source={cfg.feature_source!r} needs the waveform; the "
            "dataset stores none (build it with --store_waveform)"
        )
    rate = dict(meta.get("frontend_options", {})).get("sample_rate")
    if rate != wanted["sample_rate"]:
        return (
            f"its waveform is at {rate} Hz but data.pipeline.{cfg.frontend}.sample_rate="
            f"{wanted['sample_rate']}"
        )
    return None


def _mixed_stream(sources: Mapping[str, Sequence[Any]], cfg: PipelineConfig) -> grain.MapDataset:
    if not sources:
        raise ValueError("no data sources given")
    unknown = set(cfg.mixture_weights) - set(sources)
    if unknown:
        raise ValueError(f"pipeline config mixture_weights.{sorted(unknown)[0]}: no such source")
    missing = set(sources) - set(cfg.mixture_weights)
    if cfg.mixture_weights and missing:
        raise ValueError(f"pipeline config mixture_weights lacks source {sorted(missing)[0]!r}")
    # Evaluation reads each source once, in order, unless num_epochs says otherwise.
    num_epochs = cfg.num_epochs if (cfg.train or cfg.num_epochs) else 1
    streams = []
    for i, (name, source) in enumerate(sorted(sources.items())):
        if len(source) == 0:
            raise ValueError(f"data source {name!r} is empty")
        if cfg.train and cfg.data_fraction < 1.0:
            source = _fraction_of(source, name, cfg)
        ds = grain.MapDataset.source(source)
        if cfg.train:
            ds = ds.shuffle(seed=int(np.random.SeedSequence([cfg.seed, i]).generate_state(1)[0]))
        streams.append(ds.repeat(num_epochs))
    if len(streams) == 1:
        return streams[0]
    weights = [cfg.mixture_weights.get(name, 1.0) for name in sorted(sources)]
    return grain.MapDataset.mix(streams, weights)


def _fraction_of(source: Sequence[Any], name: str, cfg: PipelineConfig) -> "_Subset":
    """The first records of one permutation drawn from (``data_fraction_seed``, source name):
    a smaller fraction keeps a prefix of a larger one's records. (Grain's shuffle-then-slice
    would draw a new subset every epoch.)"""
    kept = kept_records(len(source), cfg.data_fraction)
    rng = np.random.default_rng([cfg.data_fraction_seed, zlib.crc32(name.encode())])
    log.info(
        "source %s: training on %d of %d records (data_fraction=%g, data_fraction_seed=%d)",
        name,
        kept,
        len(source),
        cfg.data_fraction,
        cfg.data_fraction_seed,
    )
    return _Subset(source, np.sort(rng.permutation(len(source))[:kept]))


class _HostRows:
    """Host p's stream positions: rows [p*b, (p+1)*b) of every global batch of B = P*b
    positions, so the global batch (host 0's rows, then host 1's, ...) is the same array,
    in the same row order, for any process count (a partial last batch is cut short)."""

    def __init__(self, num_positions: int, global_batch: int, index: int, count: int):
        self.per_host, self.global_batch = global_batch // count, global_batch
        self.offset = index * self.per_host
        full, rest = divmod(num_positions, global_batch)
        self._len = full * self.per_host + min(max(rest - self.offset, 0), self.per_host)

    def __len__(self) -> int:
        return self._len

    def __call__(self, i: int) -> int:
        return (i // self.per_host) * self.global_batch + self.offset + i % self.per_host


class _Subset:
    """Random access to the records ``indices`` of ``source``."""

    def __init__(self, source: Sequence[Any], indices: np.ndarray):
        self._source = source
        self._indices = indices

    def __len__(self) -> int:
        return len(self._indices)

    def __getitem__(self, index: int) -> Any:
        return self._source[int(self._indices[index])]


class _Collate:
    """Stacks processed examples, padding frames (or waveform segments) to the batch's
    bucket."""

    def __init__(self, cfg: PipelineConfig):
        self._buckets = (*cfg.bucket_frames, cfg.max_frames)
        self._frontend = cfg.frontend_config

    def __call__(self, examples: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        if "waveform" in examples[0]:
            num_frames = self._bucket(max(int(e["num_frames"]) for e in examples))
            samples = frontend.segment_length(num_frames, self._frontend)
            batch = {"waveform": np.stack([e["waveform"][:samples] for e in examples])}
        else:
            num_frames = self._bucket(max(len(e["features"]) for e in examples))
            padded = [transforms.pad(e["features"], num_frames) for e in examples]
            batch = {
                "features": np.stack([features for features, _ in padded]),
                "feature_mask": np.stack([mask for _, mask in padded]),
            }
        for key in examples[0]:
            if key not in batch:
                batch[key] = np.stack([e[key] for e in examples])
        return batch

    def _bucket(self, longest: int) -> int:
        return next(b for b in self._buckets if b >= longest)


class NoUsableRecordsError(RuntimeError):
    """Every record of a whole pass over the sources was skipped."""


class CountingBatchDataset(grain.IterDataset):
    """Batches ``Processed`` elements, leaving out skipped ones; each element is
    (batch or None, {reason: count} for the records consumed to make it). A None batch
    carries the counts of a tail too short for a batch, so no skip goes uncounted.
    More than ``max_consecutive_skips`` skipped records in a row raise
    ``NoUsableRecordsError`` with the reasons."""

    def __init__(
        self,
        parent: grain.IterDataset,
        batch_size: int,
        collate: Callable[[Sequence[dict]], dict],
        drop_remainder: bool,
        max_consecutive_skips: int,
    ):
        super().__init__(parent)
        self._args = (batch_size, collate, drop_remainder, max_consecutive_skips)

    def __iter__(self) -> grain.DatasetIterator:
        return _CountingBatchIterator(self._parent.__iter__(), *self._args)


class _CountingBatchIterator(grain.DatasetIterator):
    def __init__(self, parent, batch_size, collate, drop_remainder, max_consecutive_skips):
        super().__init__(parent)
        self._batch_size = batch_size
        self._collate = collate
        self._drop_remainder = drop_remainder
        self._max_skips = max_consecutive_skips
        self._skips_in_a_row = 0
        self._reasons_in_a_row: collections.Counter = collections.Counter()
        self._exhausted = False

    def __next__(self) -> tuple[dict[str, np.ndarray] | None, dict[str, int]]:
        if self._exhausted:
            raise StopIteration
        examples, counts = [], collections.Counter()
        while len(examples) < self._batch_size:
            try:
                item: Processed = next(self._parent)
            except StopIteration:
                self._exhausted = True
                break
            counts.update(item.notes)
            if item.example is not None:
                examples.append(item.example)
                self._skips_in_a_row = 0
                self._reasons_in_a_row.clear()
                continue
            self._skips_in_a_row += 1
            self._reasons_in_a_row.update(item.notes)
            if self._skips_in_a_row > self._max_skips:
                raise NoUsableRecordsError(
                    f"the input pipeline skipped {self._skips_in_a_row} records in a row, more "
                    f"than one pass over every source, without a usable one; reasons: "
                    f"{dict(sorted(self._reasons_in_a_row.items()))}"
                )
        full = len(examples) == self._batch_size or (examples and not self._drop_remainder)
        if full:
            return self._collate(examples), dict(counts)
        if self._drop_remainder and examples:
            counts["remainder_dropped"] += len(examples)
        if counts:
            return None, dict(counts)
        raise StopIteration

    def get_state(self) -> dict[str, Any]:
        return self._parent.get_state()

    def set_state(self, state: dict[str, Any]) -> None:
        self._exhausted = False
        self._parent.set_state(state)


class BatchIterator(grain.DatasetIterator):
    """Per-host batches; ``skipped`` is the running {reason: count} since the first batch,
    saved and restored with the iterator state."""

    def __init__(self, start: Callable[[int], grain.DatasetIterator]):
        super().__init__()
        self._start = start
        self._stream = start(0)
        self._skipped: collections.Counter = collections.Counter()

    def seek(self, global_batch: int) -> None:
        """Moves to global batch `global_batch` of the stream from that count alone: exact
        when no record before it was skipped (skips shift a host's later positions)."""
        self._stream.close()
        self._stream = self._start(global_batch)

    def close(self) -> None:
        stream = getattr(self, "_stream", None)  # None when building the stream failed
        if stream is not None:
            stream.close()
        super().close()

    @property
    def skipped(self) -> dict[str, int]:
        return dict(sorted(self._skipped.items()))

    def __next__(self) -> dict[str, np.ndarray]:
        while True:
            batch, counts = next(self._stream)
            self._skipped.update(counts)
            if batch is not None:
                return batch

    def get_state(self) -> dict[str, Any]:
        return {"pipeline": self._stream.get_state(), "skipped": self.skipped}

    def set_state(self, state: dict[str, Any]) -> None:
        self._stream.set_state(state["pipeline"])
        self._skipped = collections.Counter(state["skipped"])

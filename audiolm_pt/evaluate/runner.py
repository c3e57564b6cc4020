"""Runs evaluators on one saved step of a run (or a baseline of it) and records the results:
`DIR/eval/<step>.json` (everything, with the clips skipped while reading, by reason, and each
evaluator's options), and the numeric figures as `eval/<evaluator>/...` scalars through the
run's clu writers and `metrics.jsonl`. A variant evaluation (a clip limit, another dataset or
features: `context.variant_label`; or an evaluator's options other than those its results for
the step were computed with: `options_variant`) goes to `DIR/eval/<step>.<variant>.json` and
`eval@<variant>/...` scalars instead, beside the standard one and never over it."""

import hashlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

from audiolm_pt.evaluate import registry
from audiolm_pt.evaluate.context import Context, DataSpec, stem, variant_label
from audiolm_pt.inference.run import Run, load_run
from audiolm_pt.run_metrics import MetricsLogger

log = logging.getLogger(__name__)
DEFAULT_EVALS = ("linear_probe", "zero_shot", "retrieval")


def evaluate_run(
    run: Run,
    evals: Sequence[str] = DEFAULT_EVALS,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    data: DataSpec | None = None,
    features: str = "model",
    batch_size: int = 16,
) -> dict[str, Any]:
    """Results of `evals` on `run`, with what was read and skipped."""
    data = data or DataSpec.from_config(run.config)
    variant = variant_label(data, run.config, features)
    if run.workdir and run.step >= 0:
        variant = options_variant(run.workdir, run.step, variant, evals, options)
    context = Context(run, data, features=features, batch_size=batch_size, variant=variant)
    results = registry.run_all(context, evals, options)
    return {
        "step": run.step,
        "features": features,
        "variant": context.variant,
        "dataset": {
            "name": data.name,
            "splits": data.splits,
            "limit": data.limit,
            "skipped": context.skipped,
        },
        "options": _options(evals, options),
        "results": results,
    }


def _options(
    evals: Sequence[str], options: Mapping[str, Mapping[str, Any]] | None
) -> dict[str, Any]:
    """Each evaluator's options as the results file records them (JSON values)."""
    chosen = {name: dict((options or {}).get(name, {})) for name in evals}
    return json.loads(json.dumps(chosen, sort_keys=True, default=list))


def options_variant(
    workdir: str,
    step: int,
    variant: str,
    evals: Sequence[str],
    options: Mapping[str, Mapping[str, Any]] | None,
) -> str:
    """`variant`, extended by "opts<hash>" when the results file it names already holds one of
    `evals` computed with other options: a rerun with other options is filed beside the first
    one, never over it."""
    path = os.path.join(workdir, "eval", f"{stem(step, variant)}.json")
    if not os.path.exists(path):
        return variant
    with open(path, encoding="utf-8") as f:
        previous = json.load(f)
    recorded, wanted = previous.get("options", {}), _options(evals, options)
    held = previous.get("results", {})
    clashes = [n for n in evals if n in held and n in recorded and recorded[n] != wanted[n]]
    if not clashes:
        return variant
    digest = hashlib.sha1(json.dumps(wanted, sort_keys=True).encode()).hexdigest()[:8]
    label = "-".join(part for part in (variant, f"opts{digest}") if part)
    log.warning(
        "%s holds %s computed with other options (%s): these results are filed as variant %r",
        path,
        clashes,
        {n: recorded[n] for n in clashes},
        label,
    )
    return label


def save_json(workdir: str, step: int, results: Mapping[str, Any]) -> str:
    """Writes `workdir/eval/<step>[.<variant>].json`, keeping other evaluators' results
    already there for that step (an evaluator run again with the same options replaces its
    own; with others, `evaluate_run` has made it a variant); returns the path."""
    out_dir = os.path.join(workdir, "eval")
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, f"{stem(step, results.get('variant', ''))}.json")
    merged = dict(results)
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            previous = json.load(f)
        merged["results"] = {**previous.get("results", {}), **results["results"]}
        merged["options"] = {**previous.get("options", {}), **results.get("options", {})}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(merged, f, indent=2, sort_keys=True)
    log.info("evaluation of step %d written to %s", step, path)
    return path


def scalar_prefix(variant: str) -> str:
    """The metrics key prefix of an evaluation: "eval/", or "eval@<variant>/"."""
    return f"eval@{variant}/" if variant else "eval/"


def write_results(workdir: str, step: int, results: Mapping[str, Any]) -> str:
    """`save_json`, and the scalars logged at `step` to the run's writers and metrics.jsonl."""
    path = save_json(workdir, step, results)
    logger = MetricsLogger(workdir)
    try:
        prefix = scalar_prefix(results.get("variant", ""))
        logger.write_scalars(step, registry.scalars(results["results"], prefix))
    finally:
        logger.close()
    return path


def evaluate_checkpoint(
    path: str,
    step: int | None = None,
    evals: Sequence[str] = DEFAULT_EVALS,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Loads `path` at `step` (newest when None), evaluates it and records the results."""
    run = load_run(path, step)
    results = evaluate_run(run, evals, options, **kwargs)
    write_results(run.workdir, run.step, results)
    return results

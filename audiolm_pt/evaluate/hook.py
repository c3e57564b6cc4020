"""The evaluators as a training-loop hook: `fn(state) -> scalars` evaluates the live
parameters (gathered to the host) with the same code as `python -m audiolm_pt.evaluate`,
merges the full results into `DIR/eval/<step>.json` (process 0) and returns the numbers for
the loop to log under `eval/<name>/`. The trainer hands the model's graph; nothing here
imports the trainer."""

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import jax
from flax import nnx
from jax.experimental import multihost_utils

import audiolm_pt.evaluate  # noqa: F401  (importing registers the evaluators)
from audiolm_pt import experiment
from audiolm_pt.evaluate import registry
from audiolm_pt.evaluate.runner import evaluate_run, save_json
from audiolm_pt.experiment import ExperimentConfig
from audiolm_pt.inference.run import Run

# The hook's own option; the others go to the evaluator.
HOOK_OPTIONS = ("batch_size",)


def _host(tree: Any) -> Any:
    if jax.process_count() > 1:
        return multihost_utils.process_allgather(tree, tiled=True)
    return jax.device_get(tree)


def check_options(name: str, options: Mapping[str, Any], key: str) -> None:
    """Evaluator `name` exists and accepts `options`; otherwise fails naming `key`."""
    try:
        fn = registry.get(name)
    except ValueError as err:
        raise ValueError(f"config key {key}: {err}") from None
    own = {k: v for k, v in options.items() if k not in HOOK_OPTIONS}
    try:
        inspect.signature(fn).bind(None, **own)
    except TypeError as err:
        raise ValueError(f"config key {key}: {err}") from None


def make_hook(
    name: str,
    graphdef: nnx.GraphDef,
    config: ExperimentConfig,
    workdir: str,
    batch_size: int = 16,
    **options: Any,
) -> Callable[[dict[str, Any]], dict[str, float]]:
    """A loop evaluator running evaluator `name` with `options` on the live state."""
    check_options(name, options, f"evals.{name}")
    tokenizer = experiment.tokenizer_of(config)

    def evaluate(state: dict[str, Any]) -> dict[str, float]:
        model = nnx.merge(graphdef, _host(state["params"]), _host(state["rest"]))
        run = Run(workdir, config, model, tokenizer, int(state["step"]))
        results = evaluate_run(run, (name,), {name: options}, batch_size=batch_size)
        if jax.process_index() == 0:
            save_json(workdir, run.step, results)
        return registry.scalars(results["results"][name])

    return evaluate

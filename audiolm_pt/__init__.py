"""audiolm_pt: pretraining general-purpose audio encoders from audio-text pairs in JAX/Flax.

`audiolm_pt.load(workdir_or_checkpoint, step=None)` returns a model for inference (see
`audiolm_pt.api`); it is imported on first use so that `import audiolm_pt` stays light.
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    if name == "load":
        from audiolm_pt.api import load

        return load
    raise AttributeError(f"module 'audiolm_pt' has no attribute {name!r}")

"""audiolm_pt: pretraining general-purpose audio encoders from audio-text pairs in JAX/Flax."""

__version__ = "0.1.0"

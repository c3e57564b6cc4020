"""Flax NNX models: audio encoder, BERT text encoder, caption decoder, heads, FLOPs.

Imports only jax/flax/numpy (plus safetensors for checkpoint loading), never the data stack.
"""

"""The trainer: optimizer, jitted step, checkpoints, metrics and the training loop."""

"""Datasets at rest (demo corpus, TFDS builders) and the input pipeline that streams them."""

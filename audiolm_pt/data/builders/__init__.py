"""TFDS/ArrayRecord dataset builders for audio–caption corpora.

Entry points: ``tfds_builder.build_dataset`` (Python), ``python -m audiolm_pt.data.builders``
(command line) and ``tfds_builder.open_dataset`` (read a built dataset back). This package
``__init__`` stays import-free so that feature-extraction worker processes start without
loading TensorFlow.
"""

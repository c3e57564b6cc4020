"""Command line: ``python -m audiolm_pt.data.demo_corpus --out=DIR --num_clips=2000``."""

from audiolm_pt.data.demo_corpus.build import main

main()

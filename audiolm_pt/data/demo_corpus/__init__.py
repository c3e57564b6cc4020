"""A small, real, multi-domain audio–caption corpus built from sounds that Debian packages ship.

Speech comes from espeak-ng, music from fluidsynth with the FluidR3 General MIDI soundfont,
sound events from the sonic-pi sample library, and mixtures from pairs of those. Each clip gets
captions in several styles (tags, short, long, transcript) and labels for probing tasks.
``python -m audiolm_pt.data.demo_corpus --out=DIR`` writes ``DIR/manifest.jsonl``,
``DIR/audio/<split>/<id>.flac`` and ``DIR/corpus_info.json`` (see ``build.py``).
"""

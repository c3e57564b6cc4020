"""Experiment configs: one `get_config(arg)` per file; `common` holds the shared defaults."""

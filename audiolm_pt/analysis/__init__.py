"""Analysis of finished runs and sweeps for the notebooks: power-law fits of scaling curves
(`scaling_fit`), the collected results table (`tables`), a run directory's artefacts
(`run_files`), the figures (`scaling_plots`, `run_plots`, saved by `figures`) and headless
execution of the notebooks (`run_notebooks`)."""

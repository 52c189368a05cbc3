"""What every layer above uses: one-paragraph errors (errors.py), atomic files (files.py), safe torch.save/load
(serialization.py), the console (console.py), tables as Markdown and CSV (tables.py), plots (plots.py), stop signals
(signals.py) and the environment a run records (environment.py)."""

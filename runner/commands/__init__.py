"""What the `runner` command runs: one module per command (train, eval, predict, export, report, diff),
with resume.py (what `resume=` may change) and sweep.py (a resumed sweep's jobs, the end-of-sweep summary)."""

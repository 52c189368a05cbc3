"""The jobs the `runner` command runs: train (with resume) and eval. Each is set up, run and finished here,
on top of the run directory (runner/rundir.py), the loop, the builders and the data below it."""

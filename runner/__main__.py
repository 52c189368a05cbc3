"""`python -m runner train ...` is `runner train ...`."""

from runner.cli import entry

raise SystemExit(entry())

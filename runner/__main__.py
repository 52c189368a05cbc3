"""`python -m runner train ...` is `runner train ...`."""

from runner.cli import main

raise SystemExit(main())

"""A run directory: rundir.py is its one writer (`RunDir`: the lock, the lifecycle, every write); records.py is the
read side (summary, status, config, metrics rows) that report, diff, sweep and the loggers use, without torch;
resume.py decides whether a run continues and with what (`resume=`, checked before anything is touched)."""

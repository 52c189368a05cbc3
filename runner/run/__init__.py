"""A run directory: rundir.py is its one writer (`RunDir`: the lifecycle, every write), lock.py its lock (one process
at a time), provenance.py what a fresh run records of how it was made (.hydra/); records.py is the read side
(summary, status, config, metrics rows) that report, diff, sweep and the loggers use, without torch; resume/ is the
one owner of whether a run continues and with what (fresh, continue or refuse; the resume table; the plan from
last.pt), decided before anything is touched."""

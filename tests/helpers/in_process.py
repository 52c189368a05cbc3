"""`runner ARGS` called in the pytest process itself (runner.cli.main), for refusals made before any run starts.

The same words and exit status as the command's, without a process of its own: about a tenth of a second where a
forked command (helpers/zygote.py) takes half a second to one, and what only some commands import (pandas for a
table, torchvision) is imported once per worker instead of once per command. What a process adds to the refusal (an
exit status, no traceback on its stderr) is checked by forked rows of each kind (tests/test_bad_inputs.py).

Only for commands refused before a run directory is claimed: no run starts, no thread, lock or log file is left
behind. Given back after each call: the cwd, sys.argv, the environment, the stop-signal handlers and
runner.io.signals' record, torch's thread count, and what cli keeps of one command (where it still keeps any).
"""

from __future__ import annotations

import atexit
import contextlib
import io
import os
import signal
import subprocess
import sys

# the environment a forked command gets (conftest._env): without these two
DROPPED_ENV = ("HYDRA_FULL_ERROR", "RUNNER_DATA")


def runner_in_process(
    *args: object, cwd: str | os.PathLike[str], env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`runner ARGS` in `cwd`, called here: a CompletedProcess of its exit status and what it printed."""
    import torch

    from runner import cli
    from runner.io import signals

    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR2)}
    cwd_before, argv, environ, threads = os.getcwd(), list(sys.argv), dict(os.environ), torch.get_num_threads()
    out, err = io.StringIO(), io.StringIO()
    try:
        os.chdir(cwd)
        for key in DROPPED_ENV:
            os.environ.pop(key, None)
        os.environ.update(env or {})
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = cli.main([str(a) for a in args])
            except SystemExit as end:
                code = end.code if isinstance(end.code, int) else int(end.code is not None)
    finally:
        os.chdir(cwd_before)
        sys.argv[:] = argv
        os.environ.clear()
        os.environ.update(environ)
        torch.set_num_threads(threads)
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        signals._process = None
        atexit.unregister(signals.ignore)
        for name in ("_sweep", "_selected", "_out"):
            state = getattr(cli, name, None)
            if state is not None:
                state.clear()
    return subprocess.CompletedProcess(["runner", *map(str, args)], code, out.getvalue(), err.getvalue())

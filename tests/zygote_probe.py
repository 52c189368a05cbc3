"""What a process is, for tests/test_zygote.py to hold a child forked by helpers/zygote.py against an exec'd one.

python -m zygote_probe report        the process as JSON on stdout (threads, environment, sys.path, ...)
python -m zygote_probe exit CODE     SystemExit(CODE): an int, or a message
python -m zygote_probe signal NAME   the process signals itself
python -m zygote_probe raise         an uncaught error
python -m zygote_probe interrupt     an uncaught KeyboardInterrupt
python -m zygote_probe ending FILE   a non-daemon thread and an atexit handler that write FILE, output without "\\n"
python -m zygote_probe sleep         until it is killed
python -m zygote_probe modules FILE MODULE ARGS   runs `python -m MODULE ARGS`, then writes the modules it imported
"""

import atexit
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path


def threads():
    return len(os.listdir("/proc/self/task"))


def report():
    before = threads()
    import numpy as np
    import torch

    out = {
        "threads before torch": before,
        "torch threads": torch.get_num_threads(),
        "torch interop threads": torch.get_num_interop_threads(),
    }
    torch.manual_seed(0)
    a = torch.randn(512, 512)
    out["torch result"] = float((a @ a).sum())  # an intra-op parallel op: starts torch's OpenMP pool
    out["threads after torch"] = threads()
    b = np.ones((512, 512))
    out["numpy result"] = float((b @ b).sum())  # OpenBLAS's pool
    out["threads after numpy"] = threads()
    out["environ"] = dict(os.environ)
    out["cwd"] = os.getcwd()
    out["sys.path"] = sys.path
    out["sys.argv"] = sys.argv
    out["sys.orig_argv"] = sys.orig_argv
    out["cmdline"] = Path("/proc/self/cmdline").read_bytes().rstrip(b"\0").decode().split("\0")
    out["sys.flags"] = list(sys.flags)
    main = sys.modules["__main__"]
    out["__main__"] = [main.__name__, main.__spec__.name, main.__file__, sorted(vars(main))]
    out["signals"] = {
        s.name: repr(signal.getsignal(s)) for s in signal.valid_signals() if isinstance(s, signal.Signals)
    }
    out["blocked"] = sorted(signal.pthread_sigmask(signal.SIG_BLOCK, []))
    out["stdin"] = [os.fstat(0).st_dev, os.fstat(0).st_ino]
    out["std streams"] = [
        [s.encoding, s.errors, s.line_buffering, s.isatty()] for s in (sys.stdin, sys.stdout, sys.stderr)
    ]
    out["open fds"] = sorted(int(fd) for fd in os.listdir("/proc/self/fd"))
    out["umask"] = os.umask(0o22)
    out["affinity"] = sorted(os.sched_getaffinity(0))
    out["pgid"] = os.getpgid(0)
    out["sitecustomize"] = sys.modules["sitecustomize"].__file__
    out["urlopen"] = __import__("urllib.request").request.urlopen.__name__
    out["draws"] = [__import__("random").random(), float(np.random.random_sample())]  # must differ between children
    print(json.dumps(out))
    print("to stderr", file=sys.stderr)


def ending(path):
    def later():
        time.sleep(0.5)
        with open(path, "a") as f:
            f.write("thread\n")

    threading.Thread(target=later).start()

    def at_exit():
        with open(path, "a") as f:
            f.write("atexit\n")

    atexit.register(at_exit)
    sys.stdout.write("no newline at the end")
    sys.stderr.write("nor here")


def imported():
    """The modules this process imported (not the names extension modules and aliases add to sys.modules)."""
    return sorted(
        name
        for name, module in sys.modules.items()
        if getattr(module, "__spec__", None) is not None and module.__spec__.name == name
    )


if __name__ == "__main__":
    what, *rest = sys.argv[1:]
    if what == "report":
        report()
    elif what == "exit":
        raise SystemExit(int(rest[0]) if rest[0].lstrip("-").isdigit() else rest[0])
    elif what == "signal":
        os.kill(os.getpid(), getattr(signal, rest[0]))
        time.sleep(10)
    elif what == "raise":
        raise ValueError("uncaught")
    elif what == "interrupt":
        raise KeyboardInterrupt
    elif what == "ending":
        ending(rest[0])
    elif what == "modules":
        import runpy

        atexit.register(lambda: Path(rest[0]).write_text(json.dumps(imported())))
        sys.argv = [rest[1], *rest[2:]]
        runpy.run_module(rest[1], run_name="__main__", alter_sys=True)
    elif what == "sleep":
        print("sleeping", flush=True)
        time.sleep(600)

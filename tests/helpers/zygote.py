"""A fork server for the tests' `python -m runner` commands: torch, Hydra and runner imported once per pytest worker.

Each `python -m runner ...` spends about 2 s importing torch, Hydra and runner before it does anything, and the
default tier starts a few hundred. The server (one per pytest-xdist worker, started by the first command, stopped
at the session's end) imports them once, without running anything, and forks a child for each command:

    python tests/helpers/zygote.py SOCKET LIFELINE_FD PADDING     (started by `Zygote`, never by hand)

The child is a real process: its own pid, real signals and a real exit status (through the server's waitpid:
negative for a signal, as subprocess reports it), stdin/stdout/stderr of its own (stdin: the caller's, as a
subprocess inherits it; stdout and stderr: two pipes), the caller's cwd and environment (plus what the server's
imports set in theirs), the sys.path, sys.argv and /proc/PID/cmdline of `python -m runner ARGS` there, and
`runner` run as `-m` runs it (runpy). It ends as the interpreter ends: non-daemon threads joined, atexit handlers
run, stdout and stderr flushed, then os._exit, so nothing of the server runs after it. Nothing else is carried
over: the server never ran a torch op (no OpenMP pool to lose; torch.get_num_threads is decided in the child),
never ran Hydra (its global state is fresh), never wrote to stdout; numpy's and Python's random generators are
seeded afresh in each child.

Where a fork would not be what a fresh process is, the server refuses and the caller execs (`start` says why):
- an environment that differs from the server's in a variable other than PYTHONPATH, RUNNER_*, HYDRA_FULL_ERROR
  (read when used, never while a preloaded module imports); one that a preloaded module may read while importing
  (OMP_NUM_THREADS, MKL_*, MPLBACKEND...) could not be honoured. TORCH_HOME (torch.hub reads it when it looks for
  weights) and HF_HUB_* (read when huggingface_hub is imported, which the server never does) may differ too (LAZY_ENV).
  The pytest process's own environment is the server's: when a test changes it, conftest starts a new server.
- a cwd or PYTHONPATH under which a preloaded package would be found elsewhere (an installed copy of runner, a
  torch/ folder), or a matplotlibrc in the cwd (read when matplotlib is imported).

Known differences, kept: the parent pid is the server's; the children share the server's str hash seed
(PYTHONHASHSEED), where fresh processes each draw one; sys.modules holds the preloaded modules even for a command
that would not import them (`runner diff` never imports torch); numpy's OpenBLAS pool of threads, stopped at each
fork, starts again at the child's first BLAS call instead of at import. Tests about what a command imports, or
that need a fresh interpreter for another reason, run it with subprocess (tests/test_startup.py, test_cli.py...).
tests/test_zygote.py holds a forked child against an exec'd one.

RUNNER_TESTS_EXEC=1 in the environment of pytest runs every command with a real exec, as before the server.
"""

import atexit
import contextlib
import ctypes
import importlib
import json
import os
import runpy
import selectors
import signal
import socket
import struct
import sys
import threading
import traceback
import types

# What the server imports: what every `runner train` imports first and spends its start-up on (torch, Hydra,
# runner's modules that import them). A missing name (runner's modules move) is skipped, and test_zygote.py fails.
# test_zygote.py checks that all the server holds is also in a fresh `runner train`.
PRELOAD = [
    "torch",
    "numpy",
    "numpy.random",
    "hydra",
    "hydra.main",
    "hydra._internal.utils",
    "hydra._internal.hydra",
    "omegaconf",
    "matplotlib.figure",
    "matplotlib.backends.backend_agg",
    "runner.cli",
    "runner.config.checks",
    "runner.training.build",
    "runner.commands.train",
    "runner.run.rundir",
    "runner.training.loop",
    "runner.io.plots",
    "runner.commands.report",
    # the FLOP count's (runner/training/flops.py): torch.fx's symbolic shapes and sympy, a second of every run's
    # imports, which a run makes after training
    "torch.utils.flop_counter",
    # the final test's figures (runner/stats): scikit-learn's metrics, with scipy and pandas, 2.4 s of every run's
    # imports, made after training
    "sklearn.metrics",
]
# May differ between the server's environment and a command's: read when used, never while a preloaded module
# imports (PYTHONPATH is applied to sys.path by the child itself; pytest sets PYTEST_CURRENT_TEST for each test).
RUNTIME_ENV = ("PYTHONPATH", "HYDRA_FULL_ERROR", "PYTEST_CURRENT_TEST")
RUNTIME_ENV_PREFIXES = ("RUNNER_",)
# May differ too while none of the modules named beside each is preloaded (those read it when imported): torch.hub
# reads TORCH_HOME on each call; huggingface_hub.constants reads HF_HUB_* once, at its import (the child's, by timm).
LAZY_ENV = {"TORCH_HOME": (), "HF_HUB_CACHE": ("huggingface_hub",), "HF_HUB_OFFLINE": ("huggingface_hub",)}
HEADER = struct.Struct("!I")


def send(conn, message, fds=()):
    data = json.dumps(message).encode()
    data = HEADER.pack(len(data)) + data
    if fds:
        socket.send_fds(conn, [data[:1]], list(fds))  # the descriptors ride on the first byte
        data = data[1:]
    conn.sendall(data)


def receive(conn, fds=0):
    """One message (and `fds` descriptors with it); None when the other side closed first."""
    data, received = b"", []
    while len(data) < HEADER.size or len(data) < HEADER.size + HEADER.unpack_from(data)[0]:
        if fds and not received:
            chunk, received, _, _ = socket.recv_fds(conn, 65536, fds)
        else:
            chunk = conn.recv(65536)
        if not chunk:
            for fd in received:
                os.close(fd)
            return None
        data += chunk
    return (json.loads(data[HEADER.size :]), received) if fds else json.loads(data[HEADER.size :])


# ---- the server (runs in its own process) ----


def _threads():
    return len(os.listdir("/proc/self/task"))


class _Server:
    def __init__(self, path, lifeline, extra=()):
        self.started_env = dict(os.environ)
        self.missing = []
        # runner/cli.py's main sets OpenMP's wait policy before torch loads, and libgomp reads it once, at its load:
        # here, for every child. Set for the imports only: a child's environment is then a fresh process's (runner's
        # main sets it again there; a command that is not runner's never had it).
        policy = "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ
        if policy:
            from runner.cli import SPIN_COUNT

            os.environ.update(OMP_WAIT_POLICY="PASSIVE", GOMP_SPINCOUNT=SPIN_COUNT)
        for name in [*PRELOAD, *extra]:
            try:
                importlib.import_module(name)
            except ImportError as err:
                self.missing.append(f"{name} ({err})")
        if policy:
            del os.environ["OMP_WAIT_POLICY"], os.environ["GOMP_SPINCOUNT"]
        # what the imports set in the environment, as they would in a fresh process: applied over each command's
        # but for scikit-learn's KMP_DUPLICATE_LIB_OK and KMP_INIT_AT_FORK (sklearn/__init__.py), which a fresh run sets
        # only once its final test imports scikit-learn and which only Intel's OpenMP runtime reads (torch's Linux
        # wheels load GNU's): a command that never imports scikit-learn (runner report) must not see them
        self.env_set = {
            k: v for k, v in os.environ.items() if self.started_env.get(k) != v and not k.startswith("KMP_")
        }
        self.env_unset = [k for k in self.started_env if k not in os.environ]
        own = {os.path.abspath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)}
        self.base_path = [p for p in sys.path[1:] if p not in own]  # [0] is this script's folder
        # The imports start one pool of threads: OpenBLAS's (numpy's), which its own fork handler stops before every
        # fork and restarts on its next use. Any thread more (torch's OpenMP pool, after a torch op) would be lost
        # in the child with whatever it held: the server must never run anything, and refuses to fork if it did.
        self.threads = _threads()
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(64)
        self.lifeline = lifeline
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.listener, selectors.EVENT_READ, "accept")
        self.selector.register(lifeline, selectors.EVENT_READ, "lifeline")
        self.children = {}  # pidfd: (pid, conn)

    def loop(self):
        while True:
            for key, _ in self.selector.select():
                if key.data == "lifeline":  # the pytest worker closed its end, or died
                    return self.stop()
                if key.data == "accept":
                    conn, _ = self.listener.accept()
                    if self.serve(conn) == "stop":
                        return self.stop()
                else:
                    pid, conn = self.children.pop(key.fd)
                    self.selector.unregister(key.fd)
                    os.close(key.fd)
                    _, status = os.waitpid(pid, 0)
                    with contextlib.suppress(OSError):  # the caller went away (a test that failed before it waited)
                        send(conn, {"status": status})
                    conn.close()

    def stop(self):
        """Children still running at the session's end are killed, not left behind."""
        for pid, _ in self.children.values():
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except OSError:
                pass

    def serve(self, conn):
        conn.settimeout(30)
        got = receive(conn, fds=3)
        if got is None:
            conn.close()
            return None
        request, fds = got
        if "module" not in request:
            for fd in fds:
                os.close(fd)
            if request.get("hello"):
                imported = [
                    name
                    for name, module in sys.modules.items()  # not the names extension modules add, nor aliases
                    if getattr(module, "__spec__", None) is not None and module.__spec__.name == name
                ]
                send(conn, {"pid": os.getpid(), "modules": sorted(imported), "missing": self.missing})
            conn.close()
            return "stop" if request.get("stop") else None
        sys.stdout.flush()
        sys.stderr.flush()
        if _threads() > self.threads:
            send(
                conn,
                {"error": f"the server has {_threads()} threads, {self.threads} after its imports: it ran something"},
            )
            conn.close()
            return None
        ready, told = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(ready)
            self._close_for_child(conn)
            _child(request, fds, told, self)  # never returns
        os.close(told)
        for fd in fds:
            os.close(fd)
        with open(ready, "rb") as f:
            answer = f.read().decode()  # the child closes its end when it is set up, or refuses
        if answer != "ok":
            os.waitpid(pid, 0)
            send(conn, {"refused": answer or "the child died while it was set up"})
            conn.close()
            return None
        pidfd = os.pidfd_open(pid)
        self.children[pidfd] = (pid, conn)
        self.selector.register(pidfd, selectors.EVENT_READ, "child")
        send(conn, {"pid": pid})
        return None

    def _close_for_child(self, conn):
        """Nothing of the server stays open in a child: a subprocess gets none of its parent's descriptors either."""
        for pidfd, (_, other) in self.children.items():
            os.close(pidfd)
            other.close()
        self.selector.close()
        self.listener.close()
        os.close(self.lifeline)
        conn.close()


def _child(request, fds, told, server):
    """Become `python -m MODULE ARGS` in cwd with env, or refuse; exit as the interpreter would. Never returns."""
    try:
        module, args, env = request["module"], request["args"], request["env"]
        refused = _why_not(env, request["cwd"], server)
        if not refused:
            for target, fd in enumerate(fds):  # stdin, stdout, stderr
                os.dup2(fd, target)
            os.chdir(request["cwd"])
            env = {**env, **server.env_set}
            for key in server.env_unset:
                env.pop(key, None)
            os.environ.clear()
            os.environ.update(env)
            sys.path[:] = _sys_path(env.get("PYTHONPATH"), server.base_path)
            importlib.invalidate_caches()
            refused = _shadowed()
            # the caller's resource limits (RLIMIT_FSIZE...), as a subprocess's preexec_fn sets them before it runs;
            # imported here, as the server holds only what a fresh `runner train` imports (test_zygote.py)
            if request.get("rlimits"):
                import resource

                for name, limits in request["rlimits"].items():
                    resource.setrlimit(getattr(resource, name), tuple(limits))
        if refused:
            os.write(told, refused.encode())
            os._exit(0)
        for fd in fds:
            if fd > 2:
                os.close(fd)
        sys.argv = [module, *args]  # [0] becomes the module's file, as -m makes it
        sys.orig_argv = [sys.executable, "-m", module, *args]
        if "numpy.random" in sys.modules:  # its global generator: seeded from the OS at import, in a fresh process too
            sys.modules["numpy.random"].seed()
        sys.modules["__main__"] = main = types.ModuleType("__main__")  # -m runs the module in a fresh __main__
        main.__annotations__ = {}  # as the interpreter makes it
        _set_cmdline(sys.orig_argv)
        os.write(told, b"ok")
        os.close(told)
    except BaseException:
        os.write(told, traceback.format_exc().encode())
        os._exit(70)
    code, interrupted = 0, False
    try:
        runpy._run_module_as_main(module)  # what `python -m module` calls
    except SystemExit as exit:
        code = _exit_status(exit.code)
    except KeyboardInterrupt as err:
        err = err.with_traceback(err.__traceback__.tb_next)  # from runpy's frame on, as python -m shows it
        sys.excepthook(type(err), err, err.__traceback__)
        code, interrupted = 1, True
    except BaseException as err:
        err = err.with_traceback(err.__traceback__.tb_next)
        sys.excepthook(type(err), err, err.__traceback__)
        code = 1
    # the interpreter's own ending (Py_FinalizeEx): non-daemon threads, atexit, the std streams
    try:
        threading._shutdown()
        atexit._run_exitfuncs()
    except BaseException:
        traceback.print_exc()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            code = 120 if stream is sys.stdout else code
    if interrupted:  # an uncaught Ctrl-C ends the process by SIGINT, as CPython does
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    os._exit(code)


def _why_not(env, cwd, server):
    """Why this command cannot be forked faithfully, before anything changed (see the module's docstring), or ''."""
    differ = {k for k in set(env) | set(server.started_env) if env.get(k) != server.started_env.get(k)}
    differ = sorted(k for k in differ if k not in RUNTIME_ENV and not k.startswith(RUNTIME_ENV_PREFIXES))
    differ = [k for k in differ if k not in LAZY_ENV or any(m in sys.modules for m in LAZY_ENV[k])]
    if differ:
        return f"the environment differs from the server's in {', '.join(differ)}"
    if "matplotlib" in sys.modules and os.path.exists(os.path.join(cwd, "matplotlibrc")):
        return f"{cwd} holds a matplotlibrc, which matplotlib reads when it is imported"
    return ""


def _shadowed():
    """A preloaded package that this sys.path would find elsewhere (an installed copy of runner, a torch/ folder in
    the cwd): then the child would run what a fresh process would not. '' when each one is found where it was."""
    for name, module in list(sys.modules.items()):
        spec = getattr(module, "__spec__", None)
        if "." in name or spec is None or spec.origin in (None, "built-in", "frozen"):
            continue
        # a submodule a package also registers under a bare name (scipy's Cython "_cyutility", whose spec names
        # scipy._cyutility): found through its package, which this loop checks, never through sys.path by that name
        if spec.name != name:
            continue
        for finder in sys.meta_path:
            found = finder.find_spec(name, None) if hasattr(finder, "find_spec") else None
            if found is not None:
                break
        if found is None or found.origin != spec.origin:
            return f"{name} would be imported from {found and found.origin}, not from {spec.origin} as preloaded"
    return ""


def _set_cmdline(argv):
    """/proc/PID/cmdline (what ps shows, and runner's message about who holds a run's lock) as the command's, not the
    server's: written over the server's own arguments, which `Zygote` pads to make room (what setproctitle does)."""
    try:
        with open("/proc/self/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        start, end = int(fields[45]), int(fields[46])  # arg_start and arg_end, fields 48 and 49 of proc(5)
        data = b"".join(os.fsencode(a) + b"\0" for a in argv)
        if len(data) <= end - start:
            ctypes.memmove(start, data.ljust(end - start, b"\0"), end - start)
    except (OSError, ValueError, IndexError):
        pass  # ps shows the server's command line; nothing else changes


def _exit_status(code):
    """SystemExit(code) as the exit status CPython gives it."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _sys_path(pythonpath, base_path):
    """sys.path of `python -m` in the cwd: the cwd, PYTHONPATH's folders made absolute, then the rest as they are
    (an editable install's path hook entry, `__editable__.runner-0.1.0.finder.__path_hook__`, is not a folder), once
    each."""
    path, seen = [], set()
    own = [os.path.abspath(p) for p in (pythonpath.split(os.pathsep) if pythonpath else [])]
    for entry in [*own, *base_path]:
        if os.path.normcase(entry) not in seen:
            seen.add(os.path.normcase(entry))
            path.append(entry)
    return [os.getcwd(), *path]


# ---- the caller's side (in the pytest worker) ----


class Zygote:
    """The fork server of this pytest worker. `start` gives a Popen-like Forked, or None where it refuses
    (see the module's docstring): then the caller execs."""

    def __init__(self, env, preload=()):
        """`preload`: modules the server imports besides PRELOAD, for the commands of a kind that imports them all
        (a table's pandas and scikit-learn: tests/test_tables.py checks it); the same rule as PRELOAD's."""
        import subprocess
        import tempfile
        import time

        self.env = dict(env)
        self.folder = tempfile.mkdtemp(prefix="runner-zygote-")
        self.path = os.path.join(self.folder, "socket")
        self.log = os.path.join(self.folder, "server.log")
        read, self._lifeline = os.pipe()
        with open(self.log, "wb") as log:
            # the last argument makes room for the children's command lines (_set_cmdline)
            self.process = subprocess.Popen(
                [sys.executable, __file__, self.path, str(read), " " * 4096, *preload],
                cwd=self.folder,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=[read],
            )
        os.close(read)
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"the fork server exited {self.process.returncode}:\n{self.server_log()}")
            try:
                hello = self._ask({"hello": True})
                self.pid, self.modules, self.missing = hello["pid"], hello["modules"], hello["missing"]
                break
            except (FileNotFoundError, ConnectionRefusedError):
                time.sleep(0.05)

    def started_with(self, env):
        """Whether the server was started in this environment (but for the test it was started in)."""
        return {**self.env, "PYTEST_CURRENT_TEST": None} == {**env, "PYTEST_CURRENT_TEST": None}

    def _ask(self, message):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.connect(self.path)
            send(conn, message)
            return receive(conn)

    def server_log(self):
        with open(self.log, errors="replace") as f:
            return f.read()[-5000:]

    def start(self, module, args, cwd, env, rlimits=None):
        """`python -m MODULE ARGS` forked from the server, stdout and stderr piped: a Popen-like Forked, or
        (None, why) when a fork would not be what a fresh process is. `rlimits`: {"RLIMIT_FSIZE": (soft, hard)...},
        set in the child before the module runs."""
        out_read, out_write = os.pipe()
        err_read, err_write = os.pipe()
        stdin = 0 if _is_open(0) else os.open(os.devnull, os.O_RDONLY)
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.connect(self.path)
            send(
                conn,
                {
                    "module": module,
                    "args": [str(a) for a in args],
                    "cwd": os.path.abspath(cwd),
                    "env": env,
                    "rlimits": rlimits or {},
                },
                fds=[stdin, out_write, err_write],
            )
            answer = receive(conn)
        except OSError as err:
            answer = {"error": f"{type(err).__name__}: {err}"}
        finally:
            for fd in (out_write, err_write, *([stdin] if stdin else [])):
                os.close(fd)
        if not answer or "pid" not in answer:
            conn.close()
            os.close(out_read)
            os.close(err_read)
            if answer and "refused" in answer:
                return None, answer["refused"]
            raise RuntimeError(f"the fork server did not start {module} {args}: {answer}\n{self.server_log()}")
        return Forked([sys.executable, "-m", module, *map(str, args)], answer["pid"], conn, out_read, err_read), None

    def stop(self):
        try:
            self._ask({"stop": True})
            self.process.wait(30)
        except Exception:
            self.process.kill()
            self.process.wait()
        os.close(self._lifeline)
        import shutil

        shutil.rmtree(self.folder, ignore_errors=True)


def _is_open(fd):
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False


class Forked:
    """A forked child as subprocess.Popen(..., stdout=PIPE, stderr=PIPE, text=True) shows a process."""

    def __init__(self, args, pid, conn, out_fd, err_fd):
        import io
        import locale

        self.args, self.pid, self.returncode = args, pid, None
        self._conn = conn
        self._encoding = locale.getpreferredencoding(False)
        # the pipes live as long as this process object, as Popen's do: closed in communicate/wait
        self.stdout = io.TextIOWrapper(open(out_fd, "rb"), encoding=self._encoding)  # noqa: SIM115
        self.stderr = io.TextIOWrapper(open(err_fd, "rb"), encoding=self._encoding)  # noqa: SIM115
        self.stdin = None
        self._chunks = {self.stdout: [], self.stderr: []}

    def poll(self):
        if self.returncode is None:
            self._conn.setblocking(False)
            try:
                self._status()
            except BlockingIOError:
                pass
            finally:
                if self.returncode is None:
                    self._conn.setblocking(True)
        return self.returncode

    def wait(self, timeout=None):
        if self.returncode is None:
            self._conn.settimeout(timeout)
            try:
                self._status()
            except TimeoutError:
                raise _timeout(self.args, timeout) from None
        return self.returncode

    def _status(self):
        message = receive(self._conn)
        if message is None:
            raise RuntimeError(f"the fork server went away while {self.pid} ran")
        self.returncode = os.waitstatus_to_exitcode(message["status"])
        self._conn.close()

    def send_signal(self, sig):
        if self.poll() is None:  # as Popen: never a pid that may have been reused
            os.kill(self.pid, sig)

    def terminate(self):
        self.send_signal(signal.SIGTERM)

    def kill(self):
        self.send_signal(signal.SIGKILL)

    def communicate(self, input=None, timeout=None):
        """stdout and stderr read to their end, then the exit status: (stdout, stderr) as text."""
        import time

        assert input is None, "the forked child's stdin is the caller's"
        deadline = None if timeout is None else time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            for stream in self._chunks:
                if not stream.closed:
                    selector.register(stream.buffer.raw, selectors.EVENT_READ, stream)
            while selector.get_map():
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise _timeout(self.args, timeout)
                for key, _ in selector.select(left):
                    chunk = os.read(key.fd, 32768)
                    if chunk:
                        self._chunks[key.data].append(chunk)
                    else:
                        selector.unregister(key.fileobj)
                        key.data.close()
        self.wait(None if deadline is None else max(0, deadline - time.monotonic()))
        return tuple(self._text(b"".join(chunks)) for chunks in self._chunks.values())

    def _text(self, data):
        """As Popen's text mode decodes: the locale's encoding, universal newlines."""
        return data.decode(self._encoding).replace("\r\n", "\n").replace("\r", "\n")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for stream in (self.stdout, self.stderr):
            stream.close()
        self.wait()


def _timeout(args, timeout):
    import subprocess

    return subprocess.TimeoutExpired(args, timeout)


if __name__ == "__main__":
    _server = _Server(sys.argv[1], int(sys.argv[2]), sys.argv[4:])
    _server.loop()

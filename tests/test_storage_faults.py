"""Storage faults: a full disk, an I/O error, a file-size limit, a read-only file system or a power cut is a stop.

Each test runs a seeded random schedule of commands (train, a resume, a 2-job sweep and its resume, eval, export,
predict and report), each under one fault injected at a random moment, by one mechanism:

    LD_PRELOAD shim   a C library built here with cc: the k-th write/fsync/rename under the test's folder fails
                      with EIO or ENOSPC (once, or from then on)
    RLIMIT_FSIZE      a file-size limit (EFBIG; SIGXFSZ ignored, as prlimit --fsize leaves it to the program)
    tmpfs             a small tmpfs, filled to the last byte during the command
    ext4 on a loop    made read-only mid-run (trigger_fs_error, errors=remount-ro), or cut off like a power loss
                      (EXT4_IOC_SHUTDOWN without flushing the journal, the process killed), then mounted again

After each command: no traceback, an error that names a path, no run left `running` (the process says what it could
not record), every checkpoint loadable, the completed runs it did not train unchanged, a completed sweep job's
metrics whole. Then the fault is taken away and the run, sweep or command is continued or run again: the result
equals its uninterrupted twin (the same tensors, the same metrics). Every violation is collected with its
operation and fault, and one assertion at the end lists them all.

    RUNNER_FAULT_SEED=7 pytest tests/test_storage_faults.py -m slow      # another schedule
"""

import ctypes
import errno
import fcntl
import hashlib
import math
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import _env, load, runner, start

from runner.run.records import read_summary, status_of

SEED = int(os.environ.get("RUNNER_FAULT_SEED", "20261207"))

# the smallest run that still trains, validates, tests and checkpoints: a 3-epoch MLP of 3 batches an epoch
TINY = [
    "model=mlp",
    "model.hidden=[16]",
    "trainer.epochs=3",
    "trainer.limit_train_batches=3",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
    "trainer.num_threads=1",
]
TRAIN = ["train", *TINY, "hydra.run.dir=run"]
SWEEP = ["train", "-m", *TINY, "seed=0,1", "hydra.sweep.dir=sweep"]
KINDS = ("train", "resume", "sweep", "sweep_resume", "eval", "export", "predict", "report")

SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

/* RUNNER_FAULT_OP (write, fsync or rename) fails with RUNNER_FAULT_ERRNO at its RUNNER_FAULT_K-th call on a file
   under RUNNER_FAULT_ROOT, and with RUNNER_FAULT_STICKY=1 at every call after it too (a disk that stays full). */
static long calls;
static int op = -1, err, sticky;
static long k;
static char root[4096];
static size_t root_len;

static void setup(void) {
    static int done;
    if (done) return;
    done = 1;
    const char *o = getenv("RUNNER_FAULT_OP"), *r = getenv("RUNNER_FAULT_ROOT");
    if (!o || !r) return;
    op = !strcmp(o, "write") ? 0 : !strcmp(o, "fsync") ? 1 : 2;
    k = atol(getenv("RUNNER_FAULT_K"));
    err = atoi(getenv("RUNNER_FAULT_ERRNO"));
    sticky = getenv("RUNNER_FAULT_STICKY") && atoi(getenv("RUNNER_FAULT_STICKY"));
    snprintf(root, sizeof root, "%s", r);
    root_len = strlen(root);
}

static int under_root(const char *path) {
    char cwd[4096];
    if (path[0] == '/') return strncmp(path, root, root_len) == 0;
    return getcwd(cwd, sizeof cwd) && strncmp(cwd, root, root_len) == 0;
}

static int fd_under_root(int fd) {
    char link[64], path[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n < 0) return 0;
    path[n] = 0;
    return under_root(path);
}

static int fails(int which, int relevant) {
    setup();
    if (which != op || !relevant) return 0;
    long c = __atomic_add_fetch(&calls, 1, __ATOMIC_SEQ_CST);
    if (c == k || (sticky && c > k)) {
        errno = err;
        return 1;
    }
    return 0;
}

ssize_t write(int fd, const void *buf, size_t n) {
    static ssize_t (*real)(int, const void *, size_t);
    if (!real) real = dlsym(RTLD_NEXT, "write");
    if (fd > 2 && fails(0, fd_under_root(fd))) return -1;
    return real(fd, buf, n);
}

int fsync(int fd) {
    static int (*real)(int);
    if (!real) real = dlsym(RTLD_NEXT, "fsync");
    if (fails(1, fd_under_root(fd))) return -1;
    return real(fd);
}

int fdatasync(int fd) {
    static int (*real)(int);
    if (!real) real = dlsym(RTLD_NEXT, "fdatasync");
    if (fails(1, fd_under_root(fd))) return -1;
    return real(fd);
}

int rename(const char *a, const char *b) {
    static int (*real)(const char *, const char *);
    if (!real) real = dlsym(RTLD_NEXT, "rename");
    if (fails(2, under_root(b))) return -1;
    return real(a, b);
}

int renameat(int da, const char *a, int db, const char *b) {
    static int (*real)(int, const char *, int, const char *);
    if (!real) real = dlsym(RTLD_NEXT, "renameat");
    if (fails(2, under_root(b))) return -1;
    return real(da, a, db, b);
}
"""


# ---- the fault-free twins ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def twins(tmp_path_factory):
    """The uninterrupted runs every continued one must equal: a 2-job sweep (seed 0 and 1, whose job 0 is TRAIN's
    twin), and TRAIN stopped at 2 epochs (completed, for a resume to 3)."""
    root = tmp_path_factory.mktemp("twins")
    runner(*SWEEP, cwd=root)
    runner(*TRAIN, "trainer.epochs=2", "hydra.run.dir=run2", cwd=root)
    return root


def tensors(path):
    state = load(path)
    return state.get("model", state)


def same_tensors(a, b):
    ta, tb = tensors(a), tensors(b)
    return set(ta) == set(tb) and all(torch.equal(ta[k], tb[k]) for k in ta)


def metric_rows(run):
    """metrics.csv's epoch, losses, metric and lr columns (the times differ from run to run)."""
    path = run / "metrics.csv"
    return [line.split(",")[:5] for line in path.read_text().splitlines()] if path.is_file() else None


def tree_digest(folder):
    return {p.relative_to(folder): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()}


# ---- the mechanisms ------------------------------------------------------------------------------


def needs_root():
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs or a loop device needs root (CI runs the slow tier as root)")


def mount_tmpfs(where, size):
    needs_root()
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True)
    if done.returncode:
        pytest.skip(f"mount -t tmpfs failed: {done.stderr.decode().strip()}")


def unmount(where):
    subprocess.run(["umount", str(where)], capture_output=True)


def fill(folder, slack):
    """Fill the file system of `folder` to `slack` bytes from full; the filler file, to delete when the fault goes."""
    filler = folder / ".filler"
    with open(filler, "ab") as f:
        try:
            while True:
                free = os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize - slack
                if free <= 0:
                    break
                f.write(b"\0" * min(free, 1 << 20))
                f.flush()
        except OSError:
            pass
    return filler


class Ext4:
    """ext4 in a file, on a loop device, mounted with errors=remount-ro at `where`."""

    def __init__(self, image, where):
        needs_root()
        for tool in ("mkfs.ext4", "losetup"):
            if shutil.which(tool) is None:
                pytest.skip(f"{tool} is not installed")
        self.image, self.where = image, where
        subprocess.run(["truncate", "-s", "64M", str(image)], check=True)
        subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True, capture_output=True)
        where.mkdir(parents=True, exist_ok=True)
        self.mount()

    def mount(self):
        done = subprocess.run(
            ["mount", "-o", "loop,errors=remount-ro", str(self.image), str(self.where)], capture_output=True
        )
        if done.returncode:
            pytest.skip(f"no loop device to mount ext4 on: {done.stderr.decode().strip()}")
        self.device = Path(
            subprocess.run(["findmnt", "-n", "-o", "SOURCE", str(self.where)], capture_output=True, text=True)
            .stdout.strip()
            .split("[")[0]
        ).name

    def read_only(self):
        Path(f"/sys/fs/ext4/{self.device}/trigger_fs_error").write_text("1\n")

    def cut(self):
        """A power cut: the file system stops taking anything, the journal unflushed (EXT4_GOING_FLAGS_NOLOGFLUSH)."""
        fd = os.open(self.where, os.O_RDONLY)
        try:
            # EXT4_IOC_SHUTDOWN = _IOR('X', 125, __u32)
            fcntl.ioctl(fd, 0x8004587D, ctypes.c_uint32(2))
        finally:
            os.close(fd)

    def remount(self):
        unmount(self.where)
        subprocess.run(["e2fsck", "-fy", str(self.image)], capture_output=True)
        self.mount()

    def close(self):
        unmount(self.where)


def build_shim(folder):
    if shutil.which("cc") is None:
        pytest.skip("no C compiler (cc) to build the LD_PRELOAD shim")
    source, library = folder / "fault.c", folder / "fault.so"
    source.write_text(SHIM)
    done = subprocess.run(
        ["cc", "-shared", "-fPIC", "-O1", "-o", str(library), str(source), "-ldl"], capture_output=True
    )
    if done.returncode:
        pytest.skip(f"cc could not build the shim: {done.stderr.decode().strip()[:300]}")
    return library


def exec_runner(args, cwd, env=None, fsize=None):
    """`python -m runner ARGS` exec'd (an LD_PRELOAD or an rlimit must be in place when the process starts)."""

    def limits():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    done = subprocess.run(
        [sys.executable, "-m", "runner", *args],
        cwd=cwd,
        env=_env(env),
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=limits if fsize else None,
    )
    return subprocess.CompletedProcess(args, done.returncode, done.stdout, done.stderr)


# the file whose next write marks a training command's progress: a fault timed from it lands mid-training
PROGRESS = {
    "train": "run/checkpoints/last.pt",
    "resume": "run/checkpoints/last.pt",
    "sweep": "sweep/0/checkpoints/last.pt",
    "sweep_resume": "sweep/1/checkpoints/last.pt",
}


def moment(rng, kind):
    """When a fault lands: (file, seconds) = that long after `file` is next written, or (None, seconds) after the
    command starts. Half the faults of a training command are timed from its first checkpoint."""
    if kind in PROGRESS and rng.random() < 0.5:
        return PROGRESS[kind], rng.uniform(0.0, 0.3)
    return None, rng.uniform(0.0, 1.5)


def stamp(path):
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


def during(args, cwd, when, action, kill=False):
    """`runner ARGS` (forked), with `action()` at the moment `when` (moment's) while it runs, then SIGKILL with
    `kill` (a power cut stops the process too). Whether the action happened before the command ended."""
    trigger, delay = when
    before = stamp(cwd / trigger) if trigger else None
    proc = start(*args, cwd=cwd)
    while trigger and proc.poll() is None and stamp(cwd / trigger) == before:
        time.sleep(0.002)
    deadline = time.monotonic() + delay
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.002)
    acted = proc.poll() is None
    if acted:
        action()
        if kill:
            proc.kill()
    out, err = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(args, proc.returncode, out, err), acted


def when_label(when):
    trigger, delay = when
    return f"{delay:.2f} s after {trigger} was written" if trigger else f"after {delay:.2f} s"


# ---- one operation ----------------------------------------------------------------------------


class Campaign:
    """The operations of one test, and every violation seen."""

    def __init__(self, twins, name, durable=False):
        self.twins, self.name, self.durable = twins, name, durable
        # operations run; commands run under a fault; those whose fault fired (its moment came while the command
        # ran, or the command failed); those a fault that fired stopped (non-zero exit, or killed by the power cut)
        self.violations, self.operations, self.faulted, self.fired, self.stopped = [], 0, 0, 0, 0

    def setup(self, kind, base):
        """What `kind` starts from in the empty folder `base` (on the disk, for a power cut), and its command."""
        base.mkdir(parents=True, exist_ok=True)
        args = self._setup(kind, base)
        if self.durable:
            # what the command starts from is on the disk before the power is cut
            os.sync()
        return args

    def _setup(self, kind, base):
        if kind == "train":
            return TRAIN
        if kind == "resume":
            shutil.copytree(self.twins / "run2", base / "run")
            return ["train", "resume=run", "trainer.epochs=3"]
        if kind == "sweep":
            return SWEEP
        if kind == "sweep_resume":
            shutil.copytree(self.twins / "sweep", base / "sweep")
            # the sweep as a stop before job 1 leaves it
            shutil.rmtree(base / "sweep" / "1")
            for name in ("summary.csv", "sweep.png"):
                (base / "sweep" / name).unlink(missing_ok=True)
            return ["train", "-m", "resume=sweep"]
        if kind == "report":
            shutil.copytree(self.twins / "sweep", base / "sweep")
            for name in ("summary.csv", "sweep.png"):
                (base / "sweep" / name).unlink(missing_ok=True)
            return ["report", "sweep"]
        shutil.copytree(self.twins / "sweep" / "0", base / "run")
        return {
            "eval": ["eval", "ckpt=run"],
            "export": ["export", "ckpt=run", "format=safetensors"],
            "predict": ["predict", "ckpt=run", "input=test"],
        }[kind]

    def completed_runs(self, base, kind):
        """Digests of the completed runs under `base` the command must leave as they are."""
        runs = {}
        for s in base.rglob("summary.json"):
            run = s.parent
            completed = (run / "checkpoints").is_dir() and read_summary(run).get("status") == "completed"
            if completed and not (kind == "resume" and run == base / "run"):
                runs[run] = tree_digest(run)
        return runs

    def check(self, label, base, proc, before, cut=False, acted=None):
        """Every violation after the command `proc` ran under a fault in `base`; `acted`: during()'s, whether the
        fault's moment came before the command ended (None: a fault there from the start, a shim or a size limit,
        which shows only by the command failing)."""
        self.operations += 1
        self.faulted += 1
        fired = bool(acted) or proc.returncode != 0
        self.fired += fired
        self.stopped += fired and proc.returncode != 0
        found = []
        text = (proc.stdout or "") + (proc.stderr or "")
        if not cut:
            if "Traceback" in text:
                found.append("a traceback: " + text[text.index("Traceback") :][:600].replace("\n", " | "))
            if proc.returncode != 0 and not names_a_path(text, base):
                said = [line for line in text.splitlines() if "error" in line.lower()] or [tail(text)]
                found.append(f"exit {proc.returncode} without a message naming a path: {said[-1][:500]}")
            if proc.returncode == 0:
                found += unfinished(base, proc.args)
        for run, digest in before.items():
            if not run.is_dir() or tree_digest(run) != digest:
                found.append(f"the completed run {run.relative_to(base)} changed")
        for s in base.rglob("summary.json"):
            run = s.parent
            raw = read_summary(run).get("status")
            if raw == "running" and status_of(run) == "running":
                found.append(f"{run.relative_to(base)} is still running by its lock")
            elif raw == "running" and not cut and "summary.json" not in text:
                found.append(f"{run.relative_to(base)}/summary.json says running, and the command did not say so")
            found += rows_problems(run, base)
        for pt in base.rglob("*.pt"):
            if pt.parent.name == "checkpoints" and not pt.name.startswith("."):
                try:
                    load(pt)
                except Exception as err:
                    found.append(f"{pt.relative_to(base)} does not load: {type(err).__name__}: {err}"[:300])
        self.violations += [f"{label}: {v}" for v in found]

    def finish(self, label, kind, base, args, proc):
        """The fault is gone: continue what the command left (or run it again) and compare with the twins."""
        self.operations += 1
        if kind in ("eval", "export", "predict", "report"):
            again = runner(*args, cwd=base, check=False)
            if again.returncode != 0:
                self.violations.append(f"{label}: run again without the fault, exit {again.returncode}: {tail(again)}")
            return
        if kind in ("sweep", "sweep_resume"):
            follow = ["train", "-m", "resume=sweep"] if (base / "sweep" / "multirun.yaml").is_file() else args
            again = runner(*follow, cwd=base, check=False)
            runs = [
                (base / "sweep" / "0", self.twins / "sweep" / "0"),
                (base / "sweep" / "1", self.twins / "sweep" / "1"),
            ]
        else:
            run = base / "run"
            last = run / "checkpoints" / "last.pt"
            if read_summary(run).get("status") == "completed" and last.is_file() and load(last)["epoch"] == 3:
                follow, again = ["(nothing: it completed)"], subprocess.CompletedProcess(args, 0, "", "")
            else:
                # with a checkpoint, a resume; without, the same command starts it afresh
                follow = ["train", "resume=run", "trainer.epochs=3"] if last.is_file() or kind == "resume" else args
                again = runner(*follow, cwd=base, check=False)
            runs = [(run, self.twins / "sweep" / "0")]
        if again.returncode != 0:
            self.violations.append(
                f"{label}: continued with runner {' '.join(follow)}, exit {again.returncode}: {tail(again)}"
            )
            return
        for run, twin in runs:
            problems = []
            if read_summary(run).get("status") != "completed":
                problems.append(f"status {read_summary(run).get('status')}")
            for name in ("last.pt", "best.pt"):
                if not (run / "checkpoints" / name).is_file():
                    problems.append(f"no {name}")
                elif not same_tensors(run / "checkpoints" / name, twin / "checkpoints" / name):
                    problems.append(f"{name} differs from its twin's")
            if metric_rows(run) != metric_rows(twin):
                problems.append(f"metrics.csv {metric_rows(run)} vs its twin's {metric_rows(twin)}")
            if problems:
                self.violations.append(f"{label}: {run.relative_to(base)} once continued: {'; '.join(problems)}"[:800])


def unfinished(base, args):
    """What a training command or sweep that exited 0 left unfinished: a run not completed, a sweep's summary.csv."""
    if args[0] != "train":
        return []
    runs = [base / "sweep" / "0", base / "sweep" / "1"] if "-m" in args else [base / "run"]
    found = [
        f"exit 0, and {run.relative_to(base)} is {read_summary(run).get('status') or 'without a summary.json'}"
        for run in runs
        if read_summary(run).get("status") != "completed"
    ]
    if "-m" in args and not (base / "sweep" / "summary.csv").is_file():
        found.append("exit 0, and the sweep has no summary.csv")
    return found


def rows_problems(run, base):
    """A run whose last.pt counts more epochs than its metrics.csv holds rows for (the rows a power cut lost)."""
    last = run / "checkpoints" / "last.pt"
    if not last.is_file():
        return []
    try:
        epochs = load(last)["epoch"]
    except Exception:
        return []
    rows = metric_rows(run) or []
    have = {r[0] for r in rows[1:]}
    header_ok = bool(rows) and rows[0][0] == "epoch"
    missing = [e for e in range(1, epochs + 1) if str(e) not in have]
    if missing or (epochs and not header_ok):
        return [
            f"{run.relative_to(base)}/metrics.csv lacks epochs {missing} (header {'ok' if header_ok else 'lost'}) "
            f"that last.pt ({epochs} epochs) holds"
        ]
    return []


# the folders the commands here are given or make in `base` (hydra.run.dir=run, hydra.sweep.dir=sweep, Hydra's own)
FOLDERS = ("run", "sweep", "outputs")


def names_a_path(text, base):
    """Whether an error line names a file or folder under `base`: absolute, or relative to the command's folder (which
    is `base`) inside one of FOLDERS, or one of them itself as what cannot be written (cannot write run (...)); not a
    temporary file of runner's own (.NAME.xxxx.tmp, which the user never sees), nor EIO's "Input/output error"."""
    errors = " ".join(line for line in text.splitlines() if "error" in line.lower())
    errors = errors.replace("Input/output error", "")
    named = re.findall(rf"\bcannot \w+ ({'|'.join(FOLDERS)})\b(?![/\w])", errors)
    for token in re.findall(r"[\w./=-]*/[\w./=-]*", errors) + named:
        # ckpt=run/checkpoints/best.pt: the path is what follows the key
        path = Path(token.split("=")[-1].rstrip(".,:;"))
        if re.fullmatch(r"\..+\.tmp", path.name):
            continue
        if path.is_absolute():
            if path.is_relative_to(base):
                return True
        # relative to the command's folder, `base` (the folder it names may be gone: a read-only disk kept nothing)
        elif path.parts and path.parts[0] in FOLDERS and ".." not in path.parts:
            return True
    return False


def tail(proc_or_text, width=400):
    text = proc_or_text if isinstance(proc_or_text, str) else proc_or_text.stdout + proc_or_text.stderr
    return " ".join(text.split())[-width:]


def report(campaign, seed):
    """The one assertion of a test: every violation of its schedule, with the seed that replays it."""
    replay = f"RUNNER_FAULT_SEED={SEED} (this test's schedule: random.Random({seed}))"
    print(
        f"{campaign.name}: {campaign.operations} operations, {campaign.faulted} faulted commands, {campaign.fired} "
        f"whose fault fired, {campaign.stopped} stopped by it, {replay}, {len(campaign.violations)} violations"
    )
    # a campaign whose faults mostly come after the command ended (or never reach their write) tests nothing: at
    # least a third must stop their command (re-pin the schedules' moments if a faster command falls below)
    assert 3 * campaign.stopped >= campaign.faulted, f"{replay}: only {campaign.stopped} of {campaign.faulted} stopped"
    assert not campaign.violations, f"{replay}, {len(campaign.violations)} violations:\n" + "\n".join(
        campaign.violations
    )


# ---- the tests ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_failing_write_fsync_or_rename_is_a_stop(tmp_path, twins):
    library = build_shim(tmp_path)
    rng = random.Random(SEED)
    campaign = Campaign(twins, "LD_PRELOAD")
    for i in range(12):
        kind = KINDS[i % len(KINDS)] if i < len(KINDS) else rng.choice(KINDS)
        op = rng.choice(["write", "write", "fsync", "rename"])
        code = rng.choice([errno.EIO, errno.ENOSPC])
        # log-uniform: the first writes (the run directory's first files) as often as those deep in training
        k, sticky = int(math.exp(rng.uniform(0, math.log(15 if op == "rename" else 300)))), rng.random() < 0.5
        base = tmp_path / f"op{i}"
        args = campaign.setup(kind, base)
        before = campaign.completed_runs(base, kind)
        env = {
            "LD_PRELOAD": str(library),
            "RUNNER_FAULT_ROOT": str(base),
            "RUNNER_FAULT_OP": op,
            "RUNNER_FAULT_K": str(k),
            "RUNNER_FAULT_ERRNO": str(code),
            "RUNNER_FAULT_STICKY": str(int(sticky)),
        }
        label = f"op{i} {kind} ({op} #{k}{'+' if sticky else ''} {errno.errorcode[code]})"
        proc = exec_runner(args, base, env)
        campaign.check(label, base, proc, before)
        campaign.finish(label, kind, base, args, proc)
    report(campaign, SEED)


@pytest.mark.slow
def test_a_file_size_limit_is_a_stop(tmp_path, twins):
    rng = random.Random(SEED + 1)
    campaign = Campaign(twins, "RLIMIT_FSIZE")
    for i in range(8):
        kind = rng.choice(KINDS)
        limit = rng.choice([512, 2048, 8192, 16384, 24000])
        base = tmp_path / f"op{i}"
        args = campaign.setup(kind, base)
        before = campaign.completed_runs(base, kind)
        label = f"op{i} {kind} (file size limit {limit} B)"
        proc = exec_runner(args, base, fsize=limit)
        campaign.check(label, base, proc, before)
        campaign.finish(label, kind, base, args, proc)
    report(campaign, SEED + 1)


@pytest.mark.slow
def test_a_disk_filled_during_the_command_is_a_stop(tmp_path, twins):
    disk = tmp_path / "disk"
    mount_tmpfs(disk, "16m")
    rng = random.Random(SEED + 2)
    campaign = Campaign(twins, "tmpfs")
    try:
        for i in range(16):
            kind = KINDS[i % len(KINDS)] if i < len(KINDS) else rng.choice(KINDS)
            when, slack = moment(rng, kind), rng.choice([0, 0, 4096, 20000])
            base = disk / f"op{i}"
            args = campaign.setup(kind, base)
            before = campaign.completed_runs(base, kind)
            label = f"op{i} {kind} (disk full {when_label(when)}, {slack} B left)"
            fillers = []
            proc, acted = during(
                args, base, when, lambda base=base, slack=slack, f=fillers: f.append(fill(base, slack))
            )
            for filler in fillers:
                filler.unlink()
            campaign.check(label, base, proc, before, acted=acted)
            campaign.finish(label, kind, base, args, proc)
            shutil.rmtree(base)
    finally:
        unmount(disk)
    report(campaign, SEED + 2)


@pytest.mark.slow
def test_a_read_only_file_system_or_a_power_cut_is_a_stop(tmp_path, twins):
    disk = Ext4(tmp_path / "ext4.img", tmp_path / "ext4")
    rng = random.Random(SEED + 3)
    campaign = Campaign(twins, "ext4", durable=True)
    try:
        for i in range(16):
            kind = KINDS[i % len(KINDS)] if i < len(KINDS) else rng.choice(KINDS)
            cut, when = i % 2 == 1, moment(rng, kind)
            base = disk.where / f"op{i}"
            args = campaign.setup(kind, base)
            before = campaign.completed_runs(base, kind)
            label = f"op{i} {kind} ({'power cut' if cut else 'read-only'} {when_label(when)})"
            proc, acted = during(args, base, when, disk.cut if cut else disk.read_only, kill=cut)
            disk.remount()
            campaign.check(label, base, proc, before, cut=cut, acted=acted)
            campaign.finish(label, kind, base, args, proc)
            shutil.rmtree(base)
    finally:
        disk.close()
    report(campaign, SEED + 3)


def test_an_error_names_a_path_only_with_a_path_under_the_commands_folder(tmp_path):
    said = "error: cannot write {} (Errno 5, EIO): Input/output error. Free space, then run the same command again."
    # the run or sweep folder itself, a file in one (relative or absolute), a key's value
    for named in ("run", "sweep", "run/metrics.csv", f"{tmp_path}/sweep/0/summary.json", "ckpt=run/checkpoints/x.pt"):
        assert names_a_path(said.format(named), tmp_path), named
    # EIO's own text, the bare words run and sweep, a path elsewhere or above, a temporary file of runner's own
    for named in ("the file", "/etc/hosts", f"{tmp_path.parent}/x", "../run/x", "run/.last.pt.ab12.tmp", "data/x.csv"):
        assert not names_a_path(said.format(named), tmp_path), named
    assert not names_a_path("error: the sweep did not run: Input/output error", tmp_path)

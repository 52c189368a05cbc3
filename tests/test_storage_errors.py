"""A write the storage refuses (a full disk, a quota, a file-size limit, an I/O error, a read-only file system) is a
stop, not a crash: one paragraph naming the file, the error and what to do, a non-zero exit, no traceback; a run ends
`interrupted` with its last.pt as it was, and resumes to the weights of a run that never stopped. A file a command
reads is checked before it is trusted: a damaged config, model card or checkpoint is refused by name.

The faults are injected in-process where the logic is what is tested (an OSError raised by os.fsync, os.write, a
file's write), and in a process of its own where the process is (its exit code, its output, its run directory): the
same OSError, raised by a wrapper around `runner` (FAULTY_RUNNER). The file-system mechanisms themselves (tmpfs,
rlimits, an LD_PRELOAD shim, ext4 on a loop device) are in the slow tier's fault campaign.
"""

import errno
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from conftest import FAST, SITECUSTOM, TESTS, load, runner, same_run

from runner.io import files
from runner.io.console import RunConsole
from runner.io.errors import RunnerError, StorageError, storage_error
from runner.run.records import read_summary, status_of
from runner.run.rundir import RunDir

ENOSPC = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _full(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


# ---- where the write happens ----------------------------------------------------------------------------------


def test_a_full_disk_while_a_file_is_replaced_names_it_and_keeps_the_old_one(tmp_path, monkeypatch):
    path = tmp_path / "summary.json"
    path.write_text("old")
    monkeypatch.setattr(os, "fsync", _full)
    with pytest.raises(StorageError) as caught:
        files.write_json(path, {"status": "completed"})
    assert str(caught.value) == (
        f"cannot write {path} (No space left on device, ENOSPC): the disk is full. Free some space, then run the "
        f"same command again."
    )
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]


@pytest.mark.parametrize("where", ["mkdir", "directory fsync"])
def test_atomic_write_tells_its_folder_and_its_directory_fsync_by_name(tmp_path, monkeypatch, where):
    path = tmp_path / "checkpoints" / "last.pt"
    if where == "mkdir":  # the folder cannot be made: a read-only file system
        monkeypatch.setattr(Path, "mkdir", lambda *a, **k: (_ for _ in ()).throw(OSError(errno.EROFS, "Read-only")))
        phrase = f"cannot write {path} (Read-only, EROFS): the file system is read-only. Remount it read-write"
    else:  # the file is in place, but its name is not yet durable: an I/O error
        monkeypatch.setattr(files, "fsync_dir", lambda folder: _raise(OSError(errno.EIO, "Input/output error")))
        phrase = f"cannot write {path.parent} (Input/output error, EIO): the device reported an I/O error."
    with pytest.raises(StorageError) as caught:
        files.atomic_write(path, lambda f: f.write(b"weights"))
    assert phrase in str(caught.value)


def _raise(err):
    raise err


def test_a_row_the_disk_refuses_half_way_leaves_metrics_csv_as_it_was(tmp_path, monkeypatch):
    path = tmp_path / "metrics.csv"
    files.append_durably(path, "1,0.5\n", header="epoch,loss\n")
    real_write = os.write
    calls = []

    def half_then_full(fd, data):
        calls.append(len(data))
        if len(calls) == 1:
            return real_write(fd, bytes(data[:3]))  # part of the row reaches the disk
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", half_then_full)
    with pytest.raises(StorageError, match=f"cannot write {path} \\(No space left on device, ENOSPC\\)"):
        files.append_durably(path, "2,0.25\n", header="epoch,loss\n")
    assert len(calls) == 2  # the precondition: a partial write happened before the refusal
    assert path.read_text() == "epoch,loss\n1,0.5\n"


def test_a_log_the_disk_refuses_is_told_once_and_the_error_being_told_is_not_hidden(tmp_path, capsys):
    log = tmp_path / "train.log"
    console = RunConsole(log)
    console.print("epoch 1")

    class Full:
        name = str(log)

        def write(self, text):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        flush = close = lambda self: None

    console._log = Full()
    console.file.file = console._log
    with pytest.raises(StorageError, match=f"cannot write {log} \\(No space left on device, ENOSPC\\)"):
        console.print("epoch 2")
    # reporting the error (or another) does not raise a second time, and the terminal still gets it all
    console.failed(RunnerError("the real error"))
    console.print("epoch 3")
    console.close()
    assert "epoch 2" in capsys.readouterr().out
    assert log.read_text() == "epoch 1\n"


# ---- a run that a write stopped --------------------------------------------------------------------------------


def _started(tmp_path, quiet=True):
    run = RunDir.claim(tmp_path / "run", RunConsole(quiet=quiet), alone=True)
    run.start()
    return run


def test_a_run_whose_write_failed_ends_interrupted_and_says_how_to_continue(tmp_path):
    (tmp_path / "run").mkdir()
    run = _started(tmp_path)
    with pytest.raises(StorageError) as caught, run:
        raise StorageError.of(tmp_path / "run" / "metrics.csv", ENOSPC)
    recorded = read_summary(tmp_path / "run")
    assert recorded["status"] == "interrupted" and "metrics.csv" in recorded["error"]
    # the run's own next step in place of the storage error's "then run the same command again"
    assert str(caught.value) == (
        f"cannot write {tmp_path / 'run' / 'metrics.csv'} (No space left on device, ENOSPC): the disk is full. Free "
        f"some space. It stopped before its first checkpoint: run the same command again to start it afresh."
    )


def test_an_oserror_of_a_library_write_in_a_run_is_told_as_runners_and_ends_interrupted(tmp_path):
    (tmp_path / "run").mkdir()
    run = _started(tmp_path)
    with pytest.raises(StorageError, match="cannot write /x/events \\(No space left on device, ENOSPC\\)"), run:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/x/events")
    assert read_summary(tmp_path / "run")["status"] == "interrupted"


def test_a_permission_error_reading_in_a_run_is_no_storage_stop(tmp_path):
    (tmp_path / "run").mkdir()
    run = _started(tmp_path)
    denied = PermissionError(errno.EACCES, "Permission denied", "/data/train.csv")
    with pytest.raises(PermissionError) as caught, run:
        raise denied
    # raised as it was (cli's handler prints it as any error), and the run is not interrupted with "Continue it with"
    assert caught.value is denied
    assert read_summary(tmp_path / "run")["status"] != "interrupted"


def test_an_end_the_disk_cannot_record_is_said_on_the_terminal_and_read_as_interrupted(tmp_path, monkeypatch, capsys):
    (tmp_path / "run").mkdir()
    run = _started(tmp_path, quiet=False)
    assert read_summary(tmp_path / "run")["status"] == "running"
    monkeypatch.setattr(os, "fsync", _full)  # summary.json can no longer be written, nor train.log flushed to disk
    first = StorageError.of(tmp_path / "run" / "checkpoints" / "last.pt", ENOSPC)
    with pytest.raises(StorageError, match=r"checkpoints/last.pt \(No space left"), run:
        raise first
    out = " ".join(capsys.readouterr().out.split())
    assert "the run ended interrupted, and that could not be recorded in" in out
    assert "every reader (resume, eval, report, a sweep) takes a `running` run whose lock is free as interrupted" in out
    assert read_summary(tmp_path / "run")["status"] == "running"  # what the disk kept
    assert status_of(tmp_path / "run") == "interrupted"  # the lock was released with the process's RunDir


def test_the_funnel_tells_only_storage_errors_and_finds_them_behind_other_errors():
    assert storage_error(FileNotFoundError(errno.ENOENT, "No such file", "x")) is None  # a read: a bug, not storage
    assert storage_error(ValueError("no")) is None
    wrapped = RuntimeError("[enforce fail at inline_container.cc] PytorchStreamWriter failed writing file data/0")
    wrapped.__cause__ = OSError(errno.EFBIG, "File too large")
    assert "(File too large, EFBIG): the file reached a file-size limit" in str(storage_error(wrapped, "last.pt"))
    rust = Exception("Error while serializing: I/O error: No space left on device (os error 28)")  # safetensors'
    told = storage_error(rust, "model.safetensors")
    assert str(told).startswith("cannot write model.safetensors (No space left on device, ENOSPC): the disk is full")
    eio = storage_error(OSError(errno.EIO, "Input/output error", "/data/x"), where="/data")
    assert str(eio).startswith("cannot read or write /data/x (Input/output error, EIO)")


def _raised(make, during):
    try:
        try:
            raise during
        except OSError:
            make()
    except Exception as err:
        return err


def test_the_funnel_returns_runners_own_error_and_leaves_what_from_none_hid():
    full = OSError(errno.ENOSPC, "No space left on device", "/x")

    def refusal():
        raise RunnerError("data.csv is damaged") from None

    def other():
        raise ValueError("not a number") from None

    told = _raised(refusal, full)
    assert told.__context__ is full  # the precondition: the OSError is still behind it, only suppressed
    assert storage_error(told) is told  # every caller's one call: runner's own error as it is
    assert storage_error(_raised(other, full)) is None  # `from None`: the full disk is not what went wrong
    assert storage_error(_raised(lambda: _raise(ValueError("x")), full)).path == "/x"  # a library's, while writing


@pytest.mark.parametrize("code", [errno.EACCES, errno.EPERM, errno.EIO])
def test_the_funnel_does_not_take_a_read_s_permission_or_io_error_for_a_storage_stop(code):
    # without a path or folder being written, these may be a read's (a data file, a checkpoint): no "make the folder
    # writable", no run ended interrupted to resume; a caller that was writing (path=, where=) still tells them
    read = OSError(code, os.strerror(code), "/data/train.csv")
    assert storage_error(read) is None
    assert storage_error(read, where="/out").path == "/data/train.csv"
    assert storage_error(read, "/out/last.pt").path == "/out/last.pt"
    # a full disk or a read-only file system is only ever a write's
    assert storage_error(OSError(errno.ENOSPC, "No space left on device", "/x")).path == "/x"
    assert storage_error(OSError(errno.EROFS, "Read-only file system", "/x")).path == "/x"


# ---- what a command reads is checked before it is trusted -------------------------------------------------------


def _state(path):
    torch.manual_seed(0)
    torch.save({"weight": torch.randn(64, 64), "bias": torch.zeros(64)}, path)
    return path


def _flip_a_bit_of(path, member_suffix="data/0"):
    """Flip one bit in the middle of the stored bytes of the archive member ending in `member_suffix`."""
    with zipfile.ZipFile(path) as archive:
        info = next(i for i in archive.infolist() if i.filename.endswith(member_suffix))
    raw = bytearray(path.read_bytes())
    # the member's data follows its 30-byte local header, its name and its extra field
    name_len, extra_len = (
        int.from_bytes(raw[info.header_offset + 26 : info.header_offset + 28], "little"),
        int.from_bytes(raw[info.header_offset + 28 : info.header_offset + 30], "little"),
    )
    at = info.header_offset + 30 + name_len + extra_len + info.compress_size // 2
    raw[at] ^= 0x10
    path.write_bytes(bytes(raw))


def test_a_flipped_bit_in_a_checkpoint_is_refused_by_name(tmp_path):
    from runner.io.serialization import safe_load

    path = _flip_a_bit_of(_state(tmp_path / "best.pt")) or tmp_path / "best.pt"
    flipped = torch.load(path, weights_only=True)  # the precondition: torch.load itself takes it, wrong
    torch.manual_seed(0)
    assert not torch.equal(flipped["weight"], torch.randn(64, 64))
    with pytest.raises(RunnerError) as caught:
        safe_load(path)
    assert f"checkpoint {path} is corrupted: the CRC-32 of its member best/data/0 does not match" in str(caught.value)


def test_an_intact_checkpoint_loads_as_written(tmp_path):
    from runner.io.serialization import safe_load

    state = safe_load(_state(tmp_path / "best.pt"))
    torch.manual_seed(0)
    assert torch.equal(state["weight"], torch.randn(64, 64))


def test_a_resume_from_a_corrupt_last_pt_names_the_newest_intact_weights_and_a_command(tmp_path):
    from runner.config.command_line import command_arg
    from runner.run.resume import plan_resume

    checkpoints = tmp_path / "run" / "checkpoints"
    checkpoints.mkdir(parents=True)
    (tmp_path / "run" / "summary.json").write_text(json.dumps({"command": "runner train model=mlp"}))
    best = _state(checkpoints / "best.pt")
    os.utime(best, (1, 1))  # older than the kept epoch
    _state(checkpoints / "epoch=003.pt")
    _flip_a_bit_of(_state(checkpoints / "epoch=004.pt"))  # the newest kept file is damaged too
    cut = _state(checkpoints / "epoch=005.pt")  # and the one after it cut short: no zip archive at all
    cut.write_bytes(cut.read_bytes()[:2000])
    os.utime(cut, (2e9, 2e9))
    _flip_a_bit_of(_state(checkpoints / "last.pt"), "data/1")
    with pytest.raises(RunnerError) as caught:
        plan_resume(None, checkpoints / "last.pt", "interrupted", [])
    message = " ".join(str(caught.value).split())
    assert f"checkpoint {checkpoints / 'last.pt'} is corrupted" in message
    assert "no earlier copy of it is kept" in message
    # the newest file that checks out, quoted for Hydra and the shell as every suggested command is
    assert f"runner train model=mlp {command_arg('init_from', checkpoints / 'epoch=003.pt')}," in message


def test_a_cut_short_checkpoint_is_damaged():
    from runner.io.serialization import damaged_member

    assert damaged_member(Path(__file__)) == "it is no zip archive (cut short, or not a file torch.save wrote)"


FRESH = [
    # (the recorded command, .hydra/overrides.yaml, the new run's command): a run again in its own folder would find
    # the corrupt last.pt and resume it (the same refusal again); a sweep job's command holds the whole sweep
    ("runner train model=mlp hydra.run.dir=run", None, "runner train model=mlp"),
    ("runner train resume=run 'trainer.epochs=12' init_from=a.pt", None, "runner train trainer.epochs=12"),
    (
        "runner train -m 'model.channels=[8,16]' seed=0,1 'optimizer.lr=range(1,3)' hydra.sweep.dir=sweep",
        "['model.channels=[8,16]', seed=1, optimizer.lr=2]",
        "runner train 'model.channels=[8,16]' seed=1 optimizer.lr=2",
    ),
]


@pytest.mark.parametrize(("recorded", "job", "fresh"), FRESH, ids=["run dir", "resume", "sweep job"])
def test_the_command_a_corrupt_last_pt_suggests_starts_a_new_run_in_a_new_folder(tmp_path, recorded, job, fresh):
    from runner.run.resume import fresh_command

    if job:
        (tmp_path / ".hydra").mkdir()
        (tmp_path / ".hydra" / "overrides.yaml").write_text(job)
    assert fresh_command(tmp_path, recorded) == fresh


@pytest.mark.slow
def test_the_command_a_corrupt_last_pt_suggests_trains_from_the_intact_weights(tmp_path):
    import hashlib
    import re
    import shlex

    from conftest import run_dirs

    command = ["train", *FAST, "hydra.run.dir=run"]
    runner(*command, cwd=tmp_path)
    checkpoints = tmp_path / "run" / "checkpoints"
    best = checkpoints / "best.pt"
    cut = checkpoints / "epoch=002.pt"  # newer than best.pt, and cut short: not intact
    cut.write_bytes(best.read_bytes()[:4000])
    _flip_a_bit_of(checkpoints / "last.pt", "data/1")
    # the run's own command (hydra.run.dir=run) in the suggestion went back to its folder: "already holds a run"
    proc = runner("train", "resume=run", "trainer.epochs=3", cwd=tmp_path, check=False)
    message = " ".join(proc.stderr.split())
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    suggested = re.search(r"start a new run from them .* with: (.*?), or start it again", message)
    assert suggested, message
    program, *args = shlex.split(suggested.group(1))
    assert program.endswith("runner") and "hydra.run.dir=run" not in args and f"init_from={best}" in args

    runner(*args, cwd=tmp_path)
    (new,) = [d for d in run_dirs(tmp_path) if d != tmp_path / "run"]
    started = json.loads((new / "summary.json").read_text())
    assert started["status"] == "completed"
    assert started["init_from"]["source"] == str(best)
    assert started["init_from"]["sha256"] == hashlib.sha256(best.read_bytes()).hexdigest()


DAMAGED_CONFIGS = [
    ("cut short", "model:\n  _target_: runner.models.CNN\n  channels: [8, 16\n", "ParserError"),
    ("binary", b"\x80\x81\xfe garbage", "UnicodeDecodeError"),
    ("a list", "- 1\n- 2\n", "no model and no dataset with a _target_ in it"),
    ("no dataset", "model:\n  _target_: runner.models.CNN\n", "no dataset with a _target_ in it"),
]


@pytest.mark.parametrize(("text", "phrase"), [c[1:] for c in DAMAGED_CONFIGS], ids=[c[0] for c in DAMAGED_CONFIGS])
def test_a_damaged_run_config_is_refused_by_name(tmp_path, text, phrase):
    from runner.inference.loading import find_checkpoint

    (tmp_path / ".hydra").mkdir()
    config = tmp_path / ".hydra" / "config.yaml"
    config.write_bytes(text if isinstance(text, bytes) else text.encode())
    _state(tmp_path / "best.pt")
    with pytest.raises(RunnerError) as caught:
        find_checkpoint(tmp_path / "best.pt")
    message = str(caught.value)
    assert message.startswith(f"{config} is damaged (") and phrase in message, message
    assert "Put back a good copy of the file" in message


DAMAGED_CARDS = [
    ("cut short", '{"format": 3, "task": "classi', "JSONDecodeError"),
    ("not an object", "[1, 2]", "a JSON list, not an object"),
    ("a key lost", json.dumps({"format": 3, "task": "classification"}), "TypeError"),
]


@pytest.mark.parametrize(("text", "phrase"), [c[1:] for c in DAMAGED_CARDS], ids=[c[0] for c in DAMAGED_CARDS])
def test_a_damaged_model_card_is_refused_by_name(tmp_path, text, phrase):
    from omegaconf import OmegaConf

    from runner.inference.loading import read_card

    card = tmp_path / "model.json"
    card.write_text(text)
    with pytest.raises(RunnerError) as caught:
        read_card(card, OmegaConf.create({}))
    assert str(caught.value).startswith(f"{card} is damaged (") and phrase in str(caught.value)


def test_a_model_card_field_of_another_kind_is_refused(tmp_path, digits_run):
    from runner.inference.loading import find_checkpoint, read_card

    _, run_dir, _ = digits_run
    saved = json.loads((run_dir / "checkpoints" / "model.json").read_text())
    _, cfg = find_checkpoint(run_dir)
    assert read_card(run_dir / "checkpoints" / "model.json", cfg)["input_shape"] == [1, 8, 8]  # the good one reads
    card = tmp_path / "model.json"
    card.write_text(json.dumps({**saved, "input_shape": "1, 8, 8"}))
    with pytest.raises(RunnerError, match="input_shape is '1, 8, 8', not a list"):
        read_card(card, cfg)


# ---- report and a sweep's summary --------------------------------------------------------------------------------


def _sweep(tmp_path):
    """A sweep directory as a sweep leaves it: multirun.yaml and one completed job (summary.json by hand)."""
    sweep = tmp_path / "sweep"
    (sweep / "0").mkdir(parents=True)
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    summary = {"kind": "train", "status": "completed", "monitor": "val_accuracy", "best": {"val_accuracy": 0.9}}
    (sweep / "0" / "summary.json").write_text(json.dumps(summary))
    return sweep


def test_report_tells_a_summary_it_cannot_write_in_one_paragraph(tmp_path, monkeypatch, capsys):
    from runner.cli import main

    sweep = _sweep(tmp_path)
    monkeypatch.setattr(os, "fsync", _full)
    assert main(["report", str(sweep)]) == 1
    err = capsys.readouterr().err
    assert f"cannot write {sweep / 'summary.csv'} (No space left on device, ENOSPC)" in " ".join(err.split())
    assert "Traceback" not in err and not (sweep / "summary.csv").exists()


def test_a_sweep_whose_summary_cannot_be_written_does_not_count_as_complete(tmp_path, monkeypatch, capsys):
    from omegaconf import OmegaConf

    from runner.sweeps.jobs import SweepSummary

    sweep = _sweep(tmp_path)
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}})
    callback = SweepSummary()
    callback.on_multirun_start(config)
    callback.on_multirun_end(config)
    assert SweepSummary.incomplete == 0  # the precondition: its one job completed, its records written
    monkeypatch.setattr(os, "fsync", _full)
    callback.on_multirun_end(config)
    assert SweepSummary.incomplete == 1
    assert "the sweep's summary was not written: cannot write" in " ".join(capsys.readouterr().err.split())


def test_a_sweep_job_that_ended_without_its_record_keeps_the_sweep_incomplete(tmp_path):
    from omegaconf import OmegaConf

    from runner.sweeps.jobs import SweepSummary

    sweep = _sweep(tmp_path)
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}})
    callback = SweepSummary()
    callback.on_multirun_start(config)
    SweepSummary.outcomes = {str(sweep / "0"): "completed", str(sweep / "1"): "failed"}  # job 1 wrote no summary.json
    callback.on_multirun_end(config)
    assert SweepSummary.incomplete == 1


# ---- the process: exit code, output, run directory ------------------------------------------------------------

# `runner ARGS` with a fault: os.fsync raises ENOSPC on the FAULT_AT-th fsync of a file whose name is FAULT_FILE
# (metrics.csv: the row of epoch FAULT_AT), as a disk that fills up there would.
FAULTY_RUNNER = """
import errno, os, sys
name, at, real, seen = os.environ["FAULT_FILE"], int(os.environ["FAULT_AT"]), os.fsync, []
def fsync(fd):
    if os.path.basename(os.readlink(f"/proc/self/fd/{fd}")) == name:
        seen.append(fd)
        if len(seen) == at:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return real(fd)
os.fsync = fsync
from runner.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _faulty_runner(*args, cwd, fault_file, at):
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env.update(FAULT_FILE=fault_file, FAULT_AT=str(at), PYTHONPATH=os.pathsep.join([str(SITECUSTOM), str(TESTS)]))
    return subprocess.run(
        [sys.executable, "-c", FAULTY_RUNNER, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow
def test_a_full_disk_mid_training_ends_interrupted_and_the_resume_equals_a_run_that_never_stopped(tmp_path):
    args = [*FAST, "trainer.epochs=3"]
    proc = _faulty_runner("train", *args, "hydra.run.dir=run", cwd=tmp_path, fault_file="metrics.csv", at=2)
    run = tmp_path / "run"
    output = " ".join((proc.stdout + proc.stderr).split())
    assert proc.returncode == 1, output
    assert "Traceback" not in proc.stderr
    assert f"error: cannot write {run / 'metrics.csv'} (No space left on device, ENOSPC): the disk is full." in output
    assert f"Continue it with: runner train resume={run}" in output
    assert read_summary(run)["status"] == "interrupted"
    assert load(run / "checkpoints" / "last.pt")["epoch"] == 1  # the last good last.pt, of the epoch before the fault
    assert len((run / "metrics.csv").read_text().splitlines()) == 2  # a header and epoch 1's row: no torn row

    runner("train", "resume=run", cwd=tmp_path)
    runner("train", *args, "hydra.run.dir=twin", cwd=tmp_path)
    assert read_summary(run)["status"] == "completed"
    same_run(run, tmp_path / "twin")


@pytest.mark.slow
def test_a_full_disk_while_hydra_writes_an_evals_record_is_a_paragraph(tmp_path, digits_run):
    _, run_dir, _ = digits_run
    proc = _faulty_runner("eval", f"ckpt={run_dir}", cwd=tmp_path, fault_file="", at=1)
    assert proc.returncode == 0, proc.stderr  # the precondition: no fault, no failure (nothing is named "")
    script = FAULTY_RUNNER.replace(
        "os.fsync = fsync",
        "import hydra.core.utils as u\n"
        "def full(cfg, filename, output_dir):\n"
        "    output_dir.mkdir(parents=True, exist_ok=True)\n"
        "    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))\n"
        "u._save_config = full",
    )
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env.update(FAULT_FILE="", FAULT_AT="1", PYTHONPATH=str(SITECUSTOM))
    proc = subprocess.run(
        [sys.executable, "-c", script, "eval", f"ckpt={run_dir}"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    message = " ".join(proc.stderr.split())
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "error: cannot write " in message and "/.hydra/config.yaml (No space left on device, ENOSPC)" in message


def _limited_file_size():
    import resource

    resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))  # the digits CNN's weights are 263 kB


@pytest.mark.slow
def test_a_file_size_limit_while_safetensors_writes_an_export_is_a_paragraph_and_leaves_nothing(tmp_path, digits_run):
    _, run_dir, _ = digits_run
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env["PYTHONPATH"] = str(SITECUSTOM)
    proc = subprocess.run(
        [sys.executable, "-m", "runner", "export", f"ckpt={run_dir}", "format=safetensors", "out=deploy"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        preexec_fn=_limited_file_size,
        timeout=300,
    )
    message = " ".join(proc.stderr.split())
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert f"error: cannot write {tmp_path / 'deploy'} (File too large, EFBIG): the file reached a file-size" in message
    assert not (tmp_path / "deploy").exists()  # made by this command, and gone again with what it held


@pytest.mark.slow
def test_a_sweep_whose_job_a_full_disk_stopped_exits_non_zero_and_its_resume_completes_it(tmp_path):
    # job 0 writes two rows (epochs 1 and 2): the third metrics.csv fsync of the process is job 1's first row
    args = ["-m", *FAST, "seed=0,1", "hydra.sweep.dir=sweep"]
    proc = _faulty_runner("train", *args, cwd=tmp_path, fault_file="metrics.csv", at=3)
    output = " ".join((proc.stdout + proc.stderr).split())
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, output
    assert f"cannot write {tmp_path / 'sweep' / '1' / 'metrics.csv'} (No space left on device, ENOSPC)" in output
    assert "Continue it with: runner train -m resume=" in output
    assert [read_summary(tmp_path / "sweep" / job)["status"] for job in ("0", "1")] == ["completed", "interrupted"]

    runner("train", "-m", "resume=sweep", cwd=tmp_path)
    assert read_summary(tmp_path / "sweep" / "1")["status"] == "completed"
    assert "completed" in (tmp_path / "sweep" / "summary.csv").read_text()


def test_a_multirun_yaml_of_bytes_that_are_no_utf8_is_no_sweep_record(tmp_path):
    from runner.run.records import sweep_overrides

    (tmp_path / "multirun.yaml").write_bytes(b"hydra:\n  overrides:\n    task: [seed=\xff\xfe]\n")
    with pytest.raises(UnicodeDecodeError):  # the precondition: what read_text raised through -m resume=
        (tmp_path / "multirun.yaml").read_text()
    assert sweep_overrides(tmp_path) is None


def test_a_run_folder_that_cannot_be_made_is_told_by_name(tmp_path, monkeypatch):
    def read_only(self, *args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))

    monkeypatch.setattr(Path, "mkdir", read_only)
    with pytest.raises(StorageError, match="the file system is read-only"):
        files.unique_dir(tmp_path / "outputs" / "10-31-07")  # hydra.run.dir's resolver


def _copy_of(digits_run, tmp_path):
    import shutil

    _, run_dir, _ = digits_run
    shutil.copytree(run_dir, tmp_path / "run")
    return tmp_path / "run"


def _garble(path):
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2] + b"\x00\xff{[")


DAMAGED_FILES = [
    # (command, the file damaged, how, the phrase of its refusal): each command under a second
    (["eval", "ckpt=RUN"], "checkpoints/best.pt", "flip", "is corrupted: the CRC-32 of its member"),
    (["eval", "ckpt=RUN"], ".hydra/config.yaml", "garble", "config.yaml is damaged ("),
    (["predict", "ckpt=RUN", "input=test"], "checkpoints/model.json", "garble", "model.json is damaged ("),
    (["export", "ckpt=RUN", "format=safetensors"], ".hydra/config.yaml", "garble", "config.yaml is damaged ("),
    # trained on to `completed` before: now refused, naming what a new run can start from
    (["train", "resume=RUN", "trainer.epochs=12"], "checkpoints/last.pt", "flip", "init_from="),
]


@pytest.mark.parametrize(
    ("command", "name", "how", "phrase"), DAMAGED_FILES, ids=[f"{c[0][0]} {c[1]}" for c in DAMAGED_FILES]
)
def test_a_damaged_file_of_a_run_is_refused_by_name_by_every_command_that_reads_it(
    tmp_path, digits_run, command, name, how, phrase
):
    from conftest import assert_clean_failure, digest

    run = _copy_of(digits_run, tmp_path)
    _flip_a_bit_of(run / name) if how == "flip" else _garble(run / name)
    before = digest(run)
    proc = runner(*(a.replace("RUN", str(run)) for a in command), cwd=tmp_path, check=False)
    assert_clean_failure(proc, f"{run / name}", phrase)
    assert digest(run) == before


def test_a_storage_error_a_resolver_raised_is_told_behind_omegaconfs_error():
    # hydra.run.dir's resolver (unique_dir) on a read-only disk: OmegaConf re-raises its error `from None`, and the
    # eval of the storage-fault campaign printed a traceback until the funnel looked behind that too
    import errno as codes

    from omegaconf import OmegaConf

    from runner.io.errors import StorageError, storage_error

    def refuse():
        raise StorageError.of("outputs/eval/x", OSError(codes.EROFS, "Read-only file system")) from None

    OmegaConf.register_new_resolver("test_refuse_write", refuse, replace=True)
    cfg = OmegaConf.create({"dir": "${test_refuse_write:}"})
    with pytest.raises(Exception) as raised:
        _ = cfg.dir
    assert not isinstance(raised.value, StorageError) and raised.value.__suppress_context__  # wrapped, hidden
    told = storage_error(raised.value)
    assert isinstance(told, StorageError) and "outputs/eval/x" in str(told) and "EROFS" in str(told)

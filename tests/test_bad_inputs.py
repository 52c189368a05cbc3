"""The bad-input matrix: each bad command gives its message and exit status, and changes nothing that existed.

Every row runs in a directory holding a completed run, a user config folder, data and an
image folder. Before and after the command, every file there is hashed: a bad command may
add a failed run directory of its own under outputs/, but may not change or remove any
file that was there, and may not leave a checkpoint behind. Rows refused before a run starts are called in this
process (IN_PROCESS); one row of each kind, every sweep and every row that starts a run are commands of their own.
"""

import fcntl
import os
import shutil

import pytest
import torch
from conftest import digest, once_per_session, runner
from formats import write_image_folder
from helpers.in_process import runner_in_process


class Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


def hostile(run):
    torch.save({"model": Evil()}, run / "checkpoints" / "last.pt")


def corrupt_image(root):
    write_image_folder(root)
    (root / "cat" / "000.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")


def float_image(root):
    from PIL import Image

    write_image_folder(root)
    Image.new("F", (20, 16), 0.5).save(root / "dog" / "depth.tiff")


def write(name, content):
    """A setup that writes a file of `content` (text, or a function of the path) into the test's directory."""
    return lambda w: content(w / name) if callable(content) else (w / name).write_text(content)


def npz(**arrays):
    import numpy as np

    return lambda path: np.savez(path, **arrays)


def table(*args):
    """A row's command: train on t.csv holding `content`, target column b."""
    return ["train", "dataset=csv", "dataset.path=t.csv", "dataset.target=b", *args]


def arrays(*args):
    return ["train", "dataset=arrays", *args]


def no_slurm(_tmp_path):
    assert shutil.which("srun") is None, "this row needs a machine without SLURM's srun"


TWO_CLASSES = [float(i) for i in range(40)], [i % 2 for i in range(40)]
ROWS = [
    # (id, command args (RUN = the completed run's directory), phrase in the message, exit status, setup)
    ("wrong type", ["train", "trainer.epochs=ten"], "trainer.epochs must be an integer >= 1, got 'ten'", 1, None),
    ("lr zero", ["train", "optimizer.lr=0"], "optimizer.lr must be a number > 0", 1, None),
    ("negative batch", ["train", "trainer.batch_size=-1"], "trainer.batch_size must be an integer >= 1", 1, None),
    (
        "unknown key",
        ["train", "optimizer.lrr=0.1"],
        "optimizer.lrr is not a key runner reads, so it would change nothing. Did you mean optimizer.lr?",
        1,
        None,
    ),
    (
        "unknown option",
        ["train", "model=cnnn"],
        "model=cnnn is not an option of model. Did you mean model=cnn?",
        1,
        None,
    ),
    # Hydra said "Could not find 'model/resnet'" with its search path, and "Cannot merge DictConfig with ListConfig"
    ("unknown model", ["train", "model=resnet"], "Did you mean model=resnet18? The options are: cnn,", 1, None),
    (
        "unknown dataset",
        ["train", "dataset=text"],
        "dataset=text is not an option of dataset. The options are:",
        1,
        None,
    ),
    ("unknown logger", ["train", "logger=wandb"], "The options are: mlflow, tensorboard.", 1, None),
    (
        "unknown option in a sweep",
        ["train", "-m", "model=resnet,cnn"],
        "sweep job 0 (model=resnet) cannot run: its config does not compose: model=resnet is not an option of model. "
        "Did you mean model=resnet18?",
        1,
        None,
    ),
    (
        "list for a mapping",
        ["train", "dataset.augment=[crop,flip]"],
        "dataset.augment is a mapping of settings, each set by its own key, e.g. dataset.augment.crop_padding=0",
        1,
        None,
    ),
    (
        "sweep config",
        ["train", "-m", "optimizer.lr=0.1,0.01", "--cfg", "job"],
        "-m and --cfg cannot be combined",
        2,
        None,
    ),
    (
        "yaml syntax",
        ["train", "--config-dir", "mine", "model=broken"],
        "broken.yaml is not valid YAML at line 2",
        1,
        lambda w: (
            (w / "mine" / "model").mkdir(parents=True)
            or (w / "mine" / "model" / "broken.yaml").write_text("a: 1\n  b: [2\n")
        ),
    ),
    (
        "target import",
        ["train", "model._target_=no_such_module.Net"],
        "'no_such_module.Net' cannot be imported",
        1,
        None,
    ),
    ("missing data files", ["train", "dataset=mnist", "dataset.download=false"], "downloading is off", 1, None),
    (
        "empty image folder",
        ["train", "dataset=imagefolder", "dataset.root=empty"],
        "has no class folders",
        1,
        lambda w: (w / "empty").mkdir(),
    ),
    (
        "corrupt image",
        ["train", "dataset=imagefolder", "dataset.root=pets", "dataset.workers=0"],
        "cannot read 1 image: ",
        1,
        lambda w: corrupt_image(w / "pets"),
    ),
    (
        "empty class folder",
        ["train", "dataset=imagefolder", "dataset.root=pets", "dataset.workers=0"],
        "has class folders with no images in them: owl",
        1,
        lambda w: write_image_folder(w / "pets") and (w / "pets" / "owl").mkdir(),
    ),
    (
        "float image",
        ["train", "dataset=imagefolder", "dataset.root=pets", "dataset.workers=0"],
        "it holds floating-point pixels (mode F), which have no standard range",
        1,
        lambda w: float_image(w / "pets"),
    ),
    ("batch over dataset", ["train", "trainer.batch_size=5000"], "larger than the training split", 1, None),
    # an output directory the OS would refuse, told before anything is made (NOTHING_MADE)
    (
        "output not writable",
        ["train", "hydra.run.dir=afile/run"],
        "afile/run cannot be created: ",
        1,
        lambda w: (w / "afile").write_text("a file, not a directory"),
    ),
    (
        "output name too long",
        ["train", f"hydra.run.dir=runs/{'x' * 300}/run"],
        "is 300 bytes, and this file system allows 255. Point hydra.run.dir= at a folder",
        1,
        None,
    ),
    (
        "output path too long",
        ["train", "-m", f"hydra.sweep.dir={'/'.join(['d' * 200] * 25)}"],
        "cannot be created: the whole path is 50",
        1,
        None,
    ),
    (
        "export out name too long",
        ["export", "ckpt=RUN", f"out={'x' * 300}"],
        "is 300 bytes, and this file system allows 255. Point out= at a folder",
        1,
        None,
    ),
    ("output permission denied", ["train", "hydra.run.dir=locked/run"], "no folder can be made in", 1, "read-only"),
    ("resume permission denied", ["train", "resume=RUN", "trainer.epochs=4"], "cannot be written to", 1, "read-only"),
    ("disk full", ["train", "trainer.epochs=1"], "(File too large, EFBIG): the file reached a", 1, "fsize"),
    ("ckpt truncated", ["eval", "ckpt=RUN/checkpoints/best.pt"], "truncated, corrupted", 1, "truncate"),
    (
        "ckpt not a checkpoint",
        ["eval", "ckpt=notes.pt"],
        "truncated, corrupted or not a PyTorch checkpoint",
        1,
        lambda w: (w / "notes.pt").write_text("not a checkpoint"),
    ),
    ("ckpt pickled callable", ["train", "resume=RUN", "trainer.epochs=20"], "was refused", 1, "hostile"),
    (
        "resume truncated last.pt",
        ["train", "resume=RUN", "trainer.epochs=4"],
        "truncated, corrupted",
        1,
        "truncate last",
    ),
    ("ckpt other model", ["eval", "ckpt=RUN", "model=mlp"], "do not fit the model MLP", 1, None),
    # config that cannot be composed into a run: refused before the run starts, leaving no directory (NEVER_STARTED)
    (
        "interpolation loop",
        ["train", "trainer.epochs=${trainer.epochs}"],
        "trainer.epochs cannot be resolved: Recursive interpolation detected",
        1,
        None,
    ),
    (
        "deleted key",
        ["train", "~trainer.epochs"],
        "trainer.epochs is missing from the config (deleted with ~trainer.epochs?)",
        1,
        None,
    ),
    (
        "added typo",
        ["train", "+trainer.epoch=1"],
        "trainer.epoch is not a key runner reads, so it would change nothing. Did you mean trainer.epochs?",
        1,
        None,
    ),
    ("augment typo", ["train", "+dataset.augment.flp=true"], "Did you mean dataset.augment.flip?", 1, None),
    (
        "config-dir shadows built-in",
        ["train", "--config-dir", "mine", "model=cnn"],
        "mine/model/cnn.yaml has the name of runner's built-in config model/cnn.yaml, which Hydra would use instead of "
        "yours, silently. Rename it (e.g. model/my_cnn.yaml, then model=my_cnn)",
        1,
        lambda w: (
            (w / "mine" / "model").mkdir(parents=True)
            or (w / "mine" / "model" / "cnn.yaml").write_text("channels: [4]\n")
        ),
    ),
    # runs that start and then cannot go on
    (
        "lr overflows",
        ["train", "optimizer.lr=1e300", "trainer.epochs=1"],
        "the optimizer's update overflowed at step 1",
        3,
        None,
    ),
    (
        "labels over num_classes",
        ["train", "dataset.num_classes=5"],
        "its train split has class labels from 0 to 9, but dataset.num_classes=5 allows 0 to 4",
        1,
        None,
    ),
    (
        "report out is a file",
        ["report", "RUN", "--out", "afile"],
        "--out afile is an existing file",
        2,
        lambda w: (w / "afile").write_text("notes"),
    ),
    ("report nothing there", ["report", "nowhere"], "runner report: nowhere does not exist", 2, None),
    (
        "eval moves the test split",
        ["eval", "ckpt=RUN", "dataset.split_seed=1"],
        "eval: 'dataset.split_seed=1' is refused: it would change which samples are in the run's test split",
        1,
        None,
    ),
    ("eval other dataset", ["eval", "ckpt=RUN", "dataset=fake"], "eval: 'dataset=fake' is refused", 1, None),
    ("ckpt names nothing", ["eval", "ckpt=nowhere"], "names nothing", 1, None),
    ("resume completed", ["train", "resume=RUN"], "already completed its 2 epochs", 1, None),
    ("resume other model", ["train", "resume=RUN", "model.channels=[8,8]"], "a resumed run keeps its model", 1, None),
    ("resume other data", ["train", "resume=RUN", "dataset=fake"], "would change the data the run trains on", 1, None),
    (
        "resume other optimizer",
        ["train", "resume=RUN", "trainer.epochs=4", "optimizer=sgd"],
        "'optimizer=sgd' is refused: last.pt holds the state of the run's own optimizer",
        1,
        None,
    ),
    (
        "resume other scheduler",
        ["train", "resume=RUN", "trainer.epochs=4", "scheduler=cosine"],
        "'scheduler=cosine' is refused: last.pt holds the run's schedule",
        1,
        None,
    ),
    ("resume missing data", ["train", "resume=FOLDER_RUN", "trainer.epochs=4"], "is not a directory", 1, "remove pets"),
    ("resume nothing", ["train", "resume=nowhere"], "resume=nowhere names nothing", 1, None),
    (
        "resume no checkpoint",
        ["train", "resume=afolder"],
        "has no checkpoints/last.pt",
        1,
        lambda w: (w / "afolder").mkdir(),
    ),
    ("resume in use", ["train", "resume=RUN", "trainer.epochs=4"], f"is in use by process {os.getpid()}", 1, "lock"),
    (
        "train over a run",
        ["train", "trainer.epochs=3", "optimizer.lr=0.01", "hydra.run.dir=RUN"],
        "already holds a completed run, and runner never trains over a run. To train it further, run: runner train "
        "resume=",
        1,
        None,
    ),
    # both checked before any data is read: MNIST's files are missing here, and that is not what is reported
    (
        "monitor typo",
        ["train", "dataset=mnist", "dataset.download=false", "trainer.monitor=val_acc"],
        "trainer.monitor=val_acc is not a column",
        1,
        None,
    ),
    (
        "model before data",
        ["train", "dataset=mnist", "dataset.download=false", "model=lenet"],
        "cannot take this dataset's input of shape [1, 28, 28]",
        1,
        None,
    ),
    # your own table (dataset=csv, runner/data/table.py): refused by name before any run directory is claimed
    ("table empty", table(), "is empty: a table needs a header row", 1, write("t.csv", "")),
    ("table header only", table(), "has a header ('a', 'b') but no rows", 1, write("t.csv", "a,b\n")),
    (
        "table no column",
        table("dataset.target=c"),
        "no column named 'c' (dataset.target). Its columns are: 'a', 'b'",
        1,
        write("t.csv", "a,b\n1,x\n2,y\n"),
    ),
    ("table one class", table(), "has one class only", 1, write("t.csv", "a,b\n1,x\n2,x\n3,x\n")),
    (
        "table one-sample class",
        table(),
        "the class 'y' has 1 row here, and a split by class needs at least 2 of each",
        1,
        write("t.csv", "a,b\n" + "".join(f"{i},x\n" for i in range(20)) + "20,y\n"),
    ),
    (
        "table typo in a number",
        table(),
        "line 42 (row 41) has '4o'",
        1,
        write("t.csv", "a,b\n" + "".join(f"{i},{'xy'[i % 2]}\n" for i in range(40)) + "4o,x\n"),
    ),
    (
        "table mixed column",
        table(),
        "mixes numbers",
        1,
        write("t.csv", "a,b\n" + "".join(f"{i if i % 2 else 'n' + str(i)},{'xy'[i % 2]}\n" for i in range(40))),
    ),
    (
        "table infinity",
        table(),
        "column 'a' has an infinite value at line 5 (row 4)",
        1,
        write("t.csv", "a,b\n" + "".join(f"{'inf' if i == 3 else i},{'xy'[i % 2]}\n" for i in range(40))),
    ),
    (
        "table bad task",
        table("dataset.task=regresion"),
        "dataset.task=regresion: use classification or regression",
        1,
        write("t.csv", "a,b\n" + "".join(f"{i},{'xy'[i % 2]}\n" for i in range(40))),
    ),
    ("table no file", table(), "/t.csv names no file. Give the path of a .csv or .parquet file", 1, None),
    (
        "table one column",
        table(),
        "Its columns are: 'a:b' (one column: is its separator another? dataset.sep=: gives it)",
        1,
        write("t.csv", "a:b\n" + "".join(f"{i}:{'xy'[i % 2]}\n" for i in range(40))),
    ),
    (
        "table empty target",
        table(),
        "the target column 'b' is empty at line 4. Give every row a target, or leave those rows out with "
        "dataset.missing_target=drop",
        1,
        write("t.csv", "a,b\n" + "".join(f"{i},{'' if i == 2 else 'xy'[i % 2]}\n" for i in range(40))),
    ),
    (
        "table missing target value",
        table("dataset.missing_target=skip"),
        "dataset.missing_target=skip: use refuse (name the first row whose target is empty) or drop",
        1,
        write("t.csv", "a,b\n" + "".join(f"{i},{'xy'[i % 2]}\n" for i in range(40))),
    ),
    # arrays you already have (dataset=arrays, runner/data/arrays.py)
    (
        "arrays no y",
        arrays("dataset.path=a.npz"),
        "has no array named y (it has: x)",
        1,
        write("a.npz", npz(x=[[1.0]])),
    ),
    (
        "arrays lengths differ",
        arrays("dataset.path=a.npz"),
        "x has 40 samples and y 39",
        1,
        write("a.npz", npz(x=TWO_CLASSES[0], y=TWO_CLASSES[1][:39])),
    ),
    (
        "arrays NaN",
        arrays("dataset.path=a.npz"),
        "x holds NaN or infinity in sample 3",
        1,
        write("a.npz", npz(x=[*TWO_CLASSES[0][:3], float("nan"), *TWO_CLASSES[0][4:]], y=TWO_CLASSES[1])),
    ),
    (
        "arrays text",
        arrays("dataset.path=a.npz"),
        "y holds <U1 values; dataset=arrays needs numbers",
        1,
        write("a.npz", npz(x=TWO_CLASSES[0], y=["ab"[i] for i in TWO_CLASSES[1]])),
    ),
    (
        "arrays one npy",
        arrays("dataset.path=x.npy"),
        "dataset.path=x.npy dataset.target_path=y.npy",
        1,
        write("x.npy", lambda path: __import__("numpy").save(path, [1.0, 2.0])),
    ),
    (
        "arrays one class",
        arrays("dataset.path=a.npz"),
        "y has one class only (1)",
        1,
        write("a.npz", npz(x=TWO_CLASSES[0], y=[1] * 40)),
    ),
    ("arrays csv", arrays("dataset.path=t.csv"), "use dataset=csv or dataset=parquet", 1, write("t.csv", "a\n1\n")),
    (
        "arrays class names",
        arrays("dataset.path=a.npz", "dataset.class_names=[cat]"),
        "dataset.class_names holds 1 name: class i is named by entry i, so it needs one distinct name per class",
        1,
        write("a.npz", npz(x=TWO_CLASSES[0], y=TWO_CLASSES[1])),
    ),
    (
        "ddp timeout zero",
        ["train", "trainer.ddp_timeout=0"],
        "trainer.ddp_timeout must be null or seconds, > 0",
        1,
        None,
    ),
    (
        "ddp timeout inf",
        ["train", "trainer.ddp_timeout=inf"],
        "trainer.ddp_timeout must be null or seconds, > 0",
        1,
        None,
    ),
    ("fast dev run zero", ["train", "trainer.fast_dev_run=0"], "must be false, true or a number of batches", 1, None),
    ("overfit batches negative", ["train", "trainer.overfit_batches=-1"], "must be 0 or a number of batches", 1, None),
    # 0.001 of digits' 20 training batches: int(0.02) is none (Lightning's rule), refused once the data is read
    ("limit rounds to none", ["train", "trainer.limit_train_batches=0.001"], "is no batch at all", 1, None),
    ("limit too large", ["train", "trainer.limit_val_batches=1.5"], "or a fraction of them in (0, 1]", 1, None),
    (
        "fast dev run on resume",
        ["train", "resume=RUN", "trainer.fast_dev_run=true"],
        "is run again, not resumed",
        1,
        None,
    ),
    ("eval unknown tta", ["eval", "ckpt=RUN", "tta=rotate"], "is not a test-time augmentation runner has", 1, None),
    ("total limit alone", ["train", "trainer.save_total_limit=2"], "set trainer.every_n_epochs=5", 1, None),
    ("two quick checks", ["train", "trainer.fast_dev_run=true", "trainer.overfit_batches=2"], "Run one, then", 1, None),
    ("lr find key typo", ["lr-find", "lr_find.num_trainig=50"], "Did you mean lr_find.num_training?", 1, None),
    ("profile window", ["train", "trainer.profile_steps=[1,1,0]"], "must be [wait, warmup, active]", 1, None),
    ("lr find range", ["lr-find", "lr_find.min_lr=1", "lr_find.max_lr=0.1"], "must be below lr_find.max_lr", 1, None),
    ("lr find few steps", ["lr-find", "lr_find.num_training=5"], "lr_find.num_training=100", 1, None),
    ("lr find typo", ["lr-find", "+lr_find.num_trainig=50"], "Did you mean lr_find.num_training?", 1, None),
    ("lr find resume", ["lr-find", "resume=RUN"], "Give the run's weights with init_from=RUN_DIR", 1, None),
    ("lr find sweep", ["lr-find", "-m", "lr_find.num_training=20,30"], "without -m (for several settings", 2, None),
    ("lr find quick check", ["lr-find", "trainer.fast_dev_run=true"], "Drop trainer.fast_dev_run", 1, None),
    # Hydra's basic launcher ran the "parallel" trials one after the other, silently
    (
        "trials at a time without a launcher",
        ["train", "hparams_search=optuna_lr", "hydra.sweeper.n_jobs=2"],
        "asks for 2 trials at a time, but Hydra's default launcher runs a sweep's jobs in this process, so they would "
        "run one after the other. Run them side by side on this machine with hydra/launcher=parallel "
        "hydra.launcher.n_jobs=2",
        1,
        None,
    ),
    # a SLURM job of 1 task on a node of 4 GPUs: 3 would sit idle (refused before anything is submitted)
    (
        "slurm tasks not gpus",
        ["train", "-m", "hydra/launcher=slurm", "hydra.launcher.gpus_per_node=4", "model=mlp"],
        "runner trains one process per GPU, as torchrun does, so a GPU would sit idle. Set "
        "hydra.launcher.tasks_per_node=4",
        1,
        None,
    ),
    # Hydra uses a launcher only for -m: without it the job would run here alone, the launcher's settings ignored
    (
        "launcher without -m",
        ["train", "hydra/launcher=local", "hydra.launcher.tasks_per_node=2", "model=mlp"],
        "takes effect only in a sweep: without -m Hydra runs this one job here",
        1,
        None,
    ),
    # no srun here (asserted by the test below): submitit raised its RuntimeError with a traceback mid-sweep
    (
        "slurm without srun",
        ["train", "-m", "hydra/launcher=slurm_ddp", "model=mlp"],
        "this machine has no SLURM: there is no srun on its PATH",
        1,
        no_slurm,
    ),
    (
        "slurm tasks share gpus",
        [
            "train",
            "-m",
            "hydra/launcher=slurm_ddp",
            "hydra.launcher.tasks_per_node=8",
            "hydra.launcher.gpus_per_node=2",
        ],
        "so tasks would share a GPU. Set hydra.launcher.tasks_per_node=2",
        1,
        None,
    ),
]
NEVER_STARTED = {
    "interpolation loop",
    "deleted key",
    "added typo",
    "augment typo",
    "config-dir shadows built-in",
    "yaml syntax",
    "unknown key",
    "unknown option",
    "unknown model",
    "unknown dataset",
    "unknown logger",
    "list for a mapping",
    "unknown option in a sweep",
    "sweep config",
    "report out is a file",
    "report nothing there",
    "slurm tasks not gpus",
    "slurm tasks share gpus",
    "launcher without -m",
    "slurm without srun",
    "trials at a time without a launcher",
    "ddp timeout zero",
    "ddp timeout inf",
    "lr find range",
    "lr find few steps",
    "lr find typo",
    "lr find resume",
    "lr find sweep",
    "lr find quick check",
    # a table's or arrays' file is read by the config's resolvers, before any run directory is claimed
    *(row[0] for row in ROWS if row[0].startswith(("table ", "arrays "))),
}
# Refused before a run directory is claimed, and without a sweep: called in this process (helpers/in_process.py).
# One row of each kind of refusal stays a command of its own (forked), where the exit status and a stderr without a
# traceback are the process's: a key (unknown key), an option (unknown option), a config file (yaml syntax), a value
# (ddp timeout zero), a resolver (interpolation loop), lr-find's own checks (lr find range), a table (table empty),
# arrays (arrays no y) and report (report nothing there); and every sweep, launcher and row that starts a run.
FORKED = {
    "unknown key",
    "unknown option",
    "yaml syntax",
    "ddp timeout zero",
    "interpolation loop",
    "lr find range",
    "table empty",
    "arrays no y",
    "report nothing there",
}
SWEEPS = {
    "unknown option in a sweep",
    "sweep config",
    "lr find sweep",
    "slurm tasks not gpus",
    "slurm tasks share gpus",
    "launcher without -m",
    "slurm without srun",
    "trials at a time without a launcher",
}
IN_PROCESS = NEVER_STARTED - FORKED - SWEEPS
# not even an empty folder anywhere (a parent of a run directory that cannot be made)
NOTHING_MADE = {
    "lr find sweep",
    "unknown option in a sweep",
    "slurm tasks not gpus",
    "slurm tasks share gpus",
    "launcher without -m",
    "slurm without srun",
    "trials at a time without a launcher",
    "output not writable",
    "output name too long",
    "output path too long",
    "export out name too long",
    "output permission denied",
    "resume permission denied",
}
if torch.cuda.is_available():
    ROWS = [r for r in ROWS if r[0] != "resume missing device"]
else:
    ROWS.append(
        (
            "resume missing device",
            ["train", "resume=RUN", "trainer.epochs=4", "device=cuda"],
            "device=cuda is not available",
            1,
            None,
        )
    )


def test_the_rows_called_in_process_leave_a_forked_row_of_each_kind():
    names = {row[0] for row in ROWS}
    assert FORKED | SWEEPS <= NEVER_STARTED <= names  # a renamed row is not silently moved
    assert IN_PROCESS and not IN_PROCESS & FORKED and len(IN_PROCESS) < len(NEVER_STARTED)


def test_a_command_called_in_process_gives_back_what_it_changed(tmp_path):
    import signal
    import sys

    before = (os.getcwd(), list(sys.argv), dict(os.environ), torch.get_num_threads())
    handlers = [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR2)]
    proc = runner_in_process("train", "+trainer.epoch=1", cwd=tmp_path)
    assert proc.returncode == 1 and "trainer.epoch is not a key runner reads" in proc.stderr
    assert not (tmp_path / "outputs").exists() or not list((tmp_path / "outputs").rglob("*"))
    assert (os.getcwd(), sys.argv, dict(os.environ), torch.get_num_threads()) == before
    assert [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR2)] == handlers


@pytest.fixture(scope="session")
def completed_run(tmp_path_factory, worker_id):
    cwd = once_per_session(
        tmp_path_factory,
        worker_id,
        "done",
        lambda cwd: runner("train", "trainer.epochs=2", "model.channels=[8,16]", cwd=cwd),
    )
    (run,) = [p.parent for p in cwd.glob("outputs/*/*/summary.json")]
    return run


def _train_on_pets(cwd):
    write_image_folder(cwd / "pets")
    runner(
        "train",
        "dataset=imagefolder",
        "dataset.root=pets",
        "dataset.input_shape=[3,8,8]",
        "dataset.workers=0",
        "trainer.epochs=2",
        "trainer.batch_size=8",
        "model.channels=[8,16]",
        cwd=cwd,
    )


@pytest.fixture(scope="session")
def folder_run(tmp_path_factory, worker_id):
    """A completed run on an image folder (pets/, beside outputs/): its resume needs those files."""
    cwd = once_per_session(tmp_path_factory, worker_id, "folder", _train_on_pets)
    (run,) = [p.parent for p in cwd.glob("outputs/*/*/summary.json")]
    return run


# checkpoints of this model are larger
FILE_SIZE_LIMIT = {"RLIMIT_FSIZE": (100_000, 100_000)}


@pytest.mark.parametrize(("args", "phrase", "status", "setup"), [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_bad_input(request, tmp_path, completed_run, args, phrase, status, setup):
    run = tmp_path / "run"
    shutil.copytree(completed_run, run)
    if "FOLDER_RUN" in " ".join(args):  # a run on files, copied with its files, which `setup` then removes
        folder_run = request.getfixturevalue("folder_run")
        shutil.copytree(folder_run, tmp_path / "folder_run")
        shutil.copytree(folder_run.parents[2] / "pets", tmp_path / "pets")
        # a run records where its data is, absolute: the copy's is its own copy of the folder
        last = tmp_path / "folder_run" / "checkpoints" / "last.pt"
        ckpt = torch.load(last, weights_only=True)
        ckpt["config"]["dataset"]["root"] = str(tmp_path / "pets")
        torch.save(ckpt, last)
    if setup == "hostile":
        hostile(run)
    elif setup in ("truncate", "truncate last"):
        ckpt = run / "checkpoints" / ("best.pt" if setup == "truncate" else "last.pt")
        ckpt.write_bytes(ckpt.read_bytes()[:1000])
    elif setup == "remove pets":
        shutil.rmtree(tmp_path / "pets")
    elif callable(setup):
        setup(tmp_path)
    elif setup == "read-only":
        if os.geteuid() == 0:
            pytest.skip("root writes in a folder that chmod made read-only")
        (tmp_path / "locked").mkdir()
        for folder in (tmp_path / "locked", run):  # given back their permissions below, for tmp_path's cleanup
            request.addfinalizer(lambda folder=folder: folder.chmod(0o755))
            folder.chmod(0o555)
    lock = None
    if setup == "lock":  # this test process holds the run, as a training process would
        lock = os.open(run / ".lock", os.O_RDWR)
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    before = digest(tmp_path)
    listing = sorted(tmp_path.rglob("*"))
    args = [a.replace("FOLDER_RUN", str(tmp_path / "folder_run")).replace("RUN", str(run)) for a in args]
    if request.node.callspec.id in IN_PROCESS:
        proc = runner_in_process(*args, cwd=tmp_path)
    else:
        proc = runner(*args, cwd=tmp_path, check=False, rlimits=FILE_SIZE_LIMIT if setup == "fsize" else None)
    if lock is not None:
        os.close(lock)
    message = " ".join((proc.stdout + proc.stderr).split())
    assert proc.returncode == status, message
    assert phrase in message, message
    assert "Traceback" not in proc.stderr and "this must never run" not in message
    after = digest(tmp_path)
    assert {k: v for k, v in after.items() if k in before} == before  # nothing that existed has changed
    new = [k for k in after if k not in before]
    assert all(k.parts[0] == "outputs" and k.suffix != ".pt" for k in new), new  # only a failed run's own record
    if request.node.callspec.id in NEVER_STARTED:  # not even an empty run directory
        assert not (tmp_path / "outputs").exists() or not list((tmp_path / "outputs").rglob("*"))
    if request.node.callspec.id in NOTHING_MADE:
        assert sorted(tmp_path.rglob("*")) == listing

"""Every example in README.md and docs/*.md, extracted from the pages themselves and run as written.

Each page gets a sandbox that holds what its examples name (a default digits run at
outputs/2026-11-22/10-31-07, a sweep of two of its copies, photos/ of test digits, and every
file the page shows with a `# path` first line). There every Python block runs, and every shell
command either runs for real or, for training commands whose full run needs what this machine
lacks or takes minutes (CIFAR-10 files, SLURM, 20 Optuna trials), composes with `--cfg job`
(the groups, options and keys exist). What each training option does is tested elsewhere. A
command this file does not know how to treat fails the test: add it to one of the lists below.
The README is the front door: at most 250 lines, linking every page under docs/.
"""

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SITECUSTOM, runner, summary
from PIL import Image
from test_predict import raw_test_split

ROOT = Path(__file__).resolve().parent.parent
PAGES = ["README.md", *sorted(f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md"))]
RUN = "outputs/2026-11-22/10-31-07"
SWEEP = "outputs/multirun/2026-11-22/10-31-07"
README_MAX_LINES = 250

# commands not run here at all, and why
NOT_RUN = {
    "make train": "CI runs it on a fresh clone (.ci/run)",
    "make test": "CI runs it on a fresh clone (.ci/run)",
    "make gpu-check": "needs a GPU; its CPU twin runs in the slow tier (tests/test_bench.py)",
    ".venv/bin/python benchmarks/gpu_check.py --device cpu --quick": "the slow tier runs it (tests/test_bench.py)",
    "export RUNNER_DATA=/shared/datasets": "a shell setting, used by the next command (composed)",
    "torchrun --nnodes=2 --nproc_per_node=8 --rdzv-backend=c10d --rdzv-endpoint=HOST:29500 --rdzv-id=JOB -m runner "
    "train ...": "two machines; `...` stands for the user's overrides (tests/test_scaleout.py: two nodes on one host)",
    "srun --ntasks-per-node=1 torchrun --nnodes=$SLURM_NNODES --nproc-per-node=8 --rdzv-backend=c10d "
    "--rdzv-endpoint=$(scontrol show hostnames $SLURM_JOB_NODELIST | head -n1):29500 --rdzv-id=$SLURM_JOB_ID -m "
    "runner train hydra.run.dir=outputs/$SLURM_JOB_ID": "a SLURM batch script's line: no SLURM here",
}
# fenced blocks by language: bash and python run, yaml is a file (`# path`), no language is output
LANGUAGES = {"bash", "python", "yaml", ""}


def blocks(page):
    """(language, text) of every fenced block of a page, in page order."""
    return re.findall(r"```(\w*)\n(.*?)```", (ROOT / page).read_text(), flags=re.S)


def commands(text):
    """The commands of a shell block: one per line, comments dropped."""
    return [line.split("  #")[0].strip() for line in text.splitlines() if line.split("  #")[0].strip()]


def treatment(command, page="README.md"):
    """'run' (as written), 'compose' (with --cfg job), or 'not run' (NOT_RUN says why)."""
    if command in NOT_RUN:
        return "not run"
    if command.startswith("PYTHONPATH=. runner train") or command.endswith("--help"):
        return "run"
    if re.match(r"runner (eval|predict|export|report|diff|lr-find)\b", command) or command.startswith(
        "runner train -m resume="
    ):
        return "run"
    if command.startswith(("runner train", "torchrun ")):
        return "compose"
    raise AssertionError(
        f"{page}: command {command!r} is neither run, composed nor listed in NOT_RUN: "
        f"decide in tests/test_readme.py how it is tested"
    )


def composed(command):
    """The single job a training command describes, with --cfg job: torchrun's launcher dropped, and a sweep's
    first value of each swept key (Hydra prints no sweep's config)."""
    words = [w.replace("=~/", f"={Path.home()}/") for w in shlex.split(command)]  # bash expands ~ after = too
    if words[0] == "torchrun":
        words = ["runner", *words[words.index("runner") + 1 :]]
    words = [w for w in words if w not in ("-m", "--multirun")]
    words = [
        w.split("=", 1)[0] + "=" + w.split("=", 1)[1].split(",")[0] if "=" in w and not set("[({") & set(w) else w
        for w in words
    ]
    return [*words[1:], "--cfg", "job"]


SHELL = [(page, c) for page in PAGES for lang, text in blocks(page) if lang == "bash" for c in commands(text)]
COMPOSED = [(page, c) for page, c in SHELL if treatment(c, page) == "compose"]
# pages with something to run: a Python block or a command run as written
RUNS = [
    page
    for page in PAGES
    if any(lang == "python" for lang, _ in blocks(page))
    or any(p == page and treatment(c, p) == "run" for p, c in SHELL)
]


def env_for(command):
    env = {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "RUNNER_DATA")}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env["PATH"]])  # `runner` is the installed command
    env["PYTHONPATH"] = str(SITECUSTOM)  # no network (a `PYTHONPATH=.` in the command replaces it, as written)
    return env


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory, digits_run):
    """sandbox(page): a folder holding what the page's examples name, made once per page."""
    made = {}

    def make(page):
        if page in made:
            return made[page]
        root = made[page] = tmp_path_factory.mktemp("readme")
        run = shutil.copytree(digits_run[1], root / RUN)
        for job in ("0", "1"):
            shutil.copytree(run, root / SWEEP / job)
        # what marks a sweep directory; its overrides are what `runner train -m resume=SWEEP` replays
        # (job 0: the defaults)
        (root / SWEEP / "multirun.yaml").write_text("hydra:\n  overrides:\n    hydra: []\n    task: []\n")
        test = raw_test_split(run)
        for i, (x, y) in enumerate(zip(test.x[:12], test.y[:12].tolist())):  # photos/<class>/<index>.png
            (root / "photos" / str(y)).mkdir(parents=True, exist_ok=True)
            Image.fromarray(x[0].numpy(), "L").save(root / "photos" / str(y) / f"{i:04d}.png")
        for _, text in blocks(page):  # files the page shows, named on their first line
            first = text.splitlines()[0]
            if re.fullmatch(r"# [\w./-]+\.(py|yaml)", first):
                path = root / first[2:]
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
        return root

    return make


def ran_predict_and_export(root, ran):
    assert any(c.startswith("runner predict") for c in ran) and any(c.startswith("runner export") for c in ran)


def checked_readme(root, ran):
    ran_predict_and_export(root, ran)
    assert (root / SWEEP / "summary.csv").is_file()  # runner report, written back into the sweep


def checked_predict_export(root, ran):
    ran_predict_and_export(root, ran)
    assert (root / "deploy" / "model.onnx").is_file() and "# deploy.py" in ran


def checked_sweeps(root, ran):
    assert (root / SWEEP / "summary.csv").is_file()
    assert summary(root / SWEEP / "0") == summary(root / RUN)  # the resumed sweep kept its completed job as it was


def checked_comparing_runs(root, ran):
    assert (root / "outputs" / "mlflow.db").is_file()  # runner report --to mlflow


def checked_extending(root, ran):
    trained = {}
    for path in root.glob("outputs/2026-*/*/.hydra/overrides.yaml"):
        overrides = path.read_text()
        if "model=linear" in overrides or "dataset=blobs" in overrides:
            trained[
                ("blobs " if "blobs" in overrides else "digits ") + ("linear" if "linear" in overrides else "mlp")
            ] = summary(path.parent.parent)
    assert set(trained) == {"blobs mlp", "blobs linear", "digits linear"}
    assert all(trained[k]["samples"] == {"train": 2160, "val": 240, "test": 600} for k in ("blobs mlp", "blobs linear"))
    # Golden results, deterministic on CPU (re-pin from these runs' summary.json when a change means to move them).
    # Three Gaussian blobs one unit apart overlap: both models reach the same 417 / 600, the linear boundary being
    # the right one; the linear model on the 8x8 digits gets 348 / 359.
    assert trained["blobs mlp"]["test"]["test_accuracy"] == 417 / 600
    assert trained["blobs linear"]["test"]["test_accuracy"] == 417 / 600
    assert trained["digits linear"]["test"]["test_accuracy"] == 348 / 359


# what a page's examples claim, checked on what they wrote
CHECKS = {
    "README.md": checked_readme,
    "docs/predict-export.md": checked_predict_export,
    "docs/sweeps.md": checked_sweeps,
    "docs/comparing-runs.md": checked_comparing_runs,
    "docs/extending.md": checked_extending,
}


@pytest.mark.slow  # about 25 processes over the pages, three of them 10-epoch trainings: a minute or two on 2 cores
@pytest.mark.parametrize("page", RUNS)
def test_every_python_block_and_shell_command_runs_as_written(sandbox, page):
    root, ran = sandbox(page), []
    # modules a page's config names by _target_ (my_models.py, my_data.py) run inside the commands that train with them
    targets = {
        m.split(".")[0]
        for lang, text in blocks(page)
        if lang == "yaml"
        for m in re.findall(r"_target_: ([\w.]+)", text)
    }
    for lang, text in blocks(page):
        if lang == "python" and text.startswith("# ") and Path(text.split()[1]).stem in targets:
            ran.append(text.splitlines()[0])
        elif lang == "python":
            proc = subprocess.run(
                [sys.executable, "-c", text], cwd=root, env=env_for(""), capture_output=True, text=True
            )
            assert proc.returncode == 0, f"{page}: python block failed:\n{text}\n{proc.stdout}\n{proc.stderr}"
            ran.append(text.splitlines()[0])
            if text.startswith("# deploy.py"):  # the ONNX file alone, on photos/5/0001.png
                assert proc.stdout.strip() == "5"
        for command in commands(text) if lang == "bash" else []:
            if treatment(command, page) != "run":
                continue
            proc = subprocess.run(
                command, shell=True, cwd=root, env=env_for(command), capture_output=True, text=True, timeout=600
            )
            assert proc.returncode == 0, f"{page}: command failed: {command}\n{proc.stdout}\n{proc.stderr}"
            ran.append(command)
    assert ran  # the sandbox really ran the page, not an empty list
    CHECKS.get(page, lambda root, ran: None)(root, ran)


# Forked from the tests' fork server (conftest.runner): `python -m runner` in env_for's environment but for PATH,
# which composing never reads; the installed command runs each page as written in the slow tier above.
@pytest.mark.parametrize(("page", "command"), COMPOSED, ids=[f"{page}: {c}" for page, c in COMPOSED])
def test_every_training_command_composes(sandbox, page, command):
    proc = runner(*composed(command), cwd=sandbox(page), check=False)
    assert proc.returncode == 0, f"{page}: command does not compose: {command}\n{proc.stdout}\n{proc.stderr}"
    assert proc.stdout.startswith("model:")  # the job's config was printed (model first: configs/train.yaml)


def test_every_shell_command_is_treated():
    assert len(SHELL) >= 25 and {treatment(c, page) for page, c in SHELL} == {"run", "compose", "not run"}
    assert set(NOT_RUN) <= {c for _, c in SHELL}  # no reason kept for a command no page shows any more
    assert set(CHECKS) <= set(RUNS)  # every page whose claims are checked still runs something
    # the pages really are run, not an empty list
    runnable = [c for page, c in SHELL if treatment(c, page) == "run"] + [
        t for p in PAGES for lang, t in blocks(p) if lang == "python"
    ]
    assert len(runnable) >= 15


@pytest.mark.parametrize("page", PAGES)
def test_every_block_has_a_known_language(page):
    unknown = {lang for lang, _ in blocks(page)} - LANGUAGES
    assert not unknown, f"{page}: fenced blocks in {unknown}: decide in tests/test_readme.py how they are tested"


def links(page):
    """The relative links and images of a page (outside code), as (path from the repository root or None, anchor)."""
    text = re.sub(r"```.*?```", "", (ROOT / page).read_text(), flags=re.S)
    text = re.sub(r"`[^`\n]*`", "", text)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        yield (os.path.relpath(((ROOT / page).parent / path).resolve(), ROOT) if path else page), anchor


def anchors(page):
    """GitHub's anchors for a page's headings."""
    headings = re.findall(r"^#+ (.+)$", re.sub(r"```.*?```", "", (ROOT / page).read_text(), flags=re.S), flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


def test_the_readme_is_the_front_door():
    lines = len((ROOT / "README.md").read_text().splitlines())
    assert lines <= README_MAX_LINES, (
        f"README.md has {lines} lines: move a topic into docs/ (at most {README_MAX_LINES})"
    )
    linked = {path for path, _ in links("README.md") if path.startswith("docs/") and path.endswith(".md")}
    assert linked == set(PAGES[1:]), (
        f"README.md links {sorted(linked - set(PAGES))} that do not exist, and not {sorted(set(PAGES[1:]) - linked)}"
    )


@pytest.mark.parametrize("page", PAGES)
def test_every_relative_link_resolves(page):
    for path, anchor in links(page):
        assert (ROOT / path).exists(), f"{page} links {path}, which does not exist"
        if anchor and path.endswith(".md"):
            assert anchor in anchors(path), f"{page} links {path}#{anchor}, which is no heading there"

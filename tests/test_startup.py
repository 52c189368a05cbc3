"""Start-up: a run that does not compile never imports torch's compiler (runner/training/compiler.py), and the torch
internals that this relies on are still what they were. When a test here fails after a torch upgrade, read
runner/training/compiler.py's docstring against the new torch before changing anything."""

import ast
import inspect
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from conftest import runner, same_run, summary

from runner.training.flops import count_later, flops_per_sample, throughput

COMPILER = ("torch._dynamo", "torch._inductor")


def imported(importtime_stderr):
    """The modules a `python -X importtime` process imported."""
    return {line.split("|")[-1].strip() for line in importtime_stderr.splitlines() if line.startswith("import time:")}


# The default run, started as `python -m runner` starts it, with a finder first on sys.meta_path that notes when
# (and in which environment) the modules below were first asked for; then what the run wrote.
WATCHED = ("torch", "sympy", "torch.utils.flop_counter")
WATCH = f"""
import json, os, runpy, sys, time
first = {{}}

class Watch:
    def find_spec(self, name, path=None, target=None):
        if name in {WATCHED!r} and name not in first:
            wait = {{k: os.environ.get(k) for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}}
            first[name] = {{"at": time.time(), **wait}}
            with open("first_import.json", "w") as f:
                json.dump(first, f)

sys.meta_path.insert(0, Watch())
sys.argv[0] = "runner"
runpy.run_module("runner", run_name="__main__", alter_sys=True)
"""


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    """(the modules it imported, when the watched ones were first imported, its run directory) of a default run."""
    cwd = tmp_path_factory.mktemp("default-run")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", WATCH, "train", "trainer.epochs=1", "hydra.run.dir=run"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return imported(proc.stderr), json.loads((cwd / "first_import.json").read_text()), cwd / "run"


def test_a_run_that_does_not_compile_never_imports_torchs_compiler(default_run):
    modules, _, run = default_run
    # it trained
    assert "torch" in modules and "torch.optim.adam" in modules and summary(run)["steps"] == 20
    assert not [m for m in modules if m.startswith(COMPILER)], sorted(m for m in modules if m.startswith(COMPILER))[:5]
    # the digits are read from their file (runner/data/toy.py), not scikit-learn's loader; scikit-learn's metrics are
    # imported for the final test's figures (runner/stats)
    assert not [m for m in modules if m.startswith("sklearn.datasets")]


def test_the_flop_count_and_its_imports_come_after_the_first_step(default_run):
    _, first, run = default_run
    done = summary(run)
    # the count was made (summary.json's throughput has it), with what it brings: sympy, torch.fx's symbolic shapes
    assert done["throughput"]["flops_per_sample"] > 0 and set(first) == set(WATCHED), first
    first_step_at = done["timings"]["first_step_at"]
    assert first["torch"]["at"] < first_step_at < first["torch.utils.flop_counter"]["at"] <= first["sympy"]["at"]


def test_torch_loads_with_the_openmp_wait_policy_docs_figures_names(default_run):
    _, first, _ = default_run
    figures = (Path(__file__).parents[1] / "docs" / "figures.md").read_text()
    named = re.findall(r"default \(`OMP_WAIT_POLICY=(\w+) GOMP_SPINCOUNT=(\d+)`\)", figures)
    assert named and set(named) == {(first["torch"]["OMP_WAIT_POLICY"], first["torch"]["GOMP_SPINCOUNT"])}, named


def test_a_wait_policy_the_user_set_wins(monkeypatch, capsys):
    from runner.cli import main
    from runner.io.signals import SIGNALS

    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    monkeypatch.delenv("GOMP_SPINCOUNT", raising=False)
    # main installs runner's stop signals: this process's handlers are put back after it
    handlers = {name: signal.getsignal(getattr(signal, name)) for name in SIGNALS if hasattr(signal, name)}
    assert None not in handlers.values()
    try:
        assert main(["--help"]) == 0 and "runner train" in capsys.readouterr().out
    finally:
        for name, handler in handlers.items():
            signal.signal(getattr(signal, name), handler)
    # and no spin count of runner's overrides it (libgomp reads GOMP_SPINCOUNT over the policy)
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE" and "GOMP_SPINCOUNT" not in os.environ


def test_a_later_flop_count_counts_the_model_as_it_was_when_asked_for(monkeypatch):
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    # frozen, the first layer computes no gradient: neither its weight's nor its input's
    model[1].requires_grad_(False)
    frozen = flops_per_sample(model, [1, 8, 8], "classification")
    later = count_later(model, [1, 8, 8], "classification")
    model[1].requires_grad_(True)
    trained = flops_per_sample(model, [1, 8, 8], "classification")
    assert frozen and trained > frozen
    rows = [{"train_samples_per_s": 1000.0}]
    assert throughput(rows, batch_size=10, accumulate=1, flops=later) == throughput(
        rows, batch_size=10, accumulate=1, flops=frozen
    )
    assert later() == frozen
    # counted once: a second call asks nothing of the counter
    monkeypatch.setattr("runner.training.flops.flops_per_sample", lambda *args: None)
    assert later() == frozen


def test_the_stand_in_keeps_eager_training_exact_and_hands_over_to_the_real_dynamo_when_asked(tmp_path):
    script = textwrap.dedent("""
        import sys, torch
        from runner.training import compiler
        from runner.training.device import configure_torch

        def train(seed):
            torch.manual_seed(seed)
            model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
            opt = torch.optim.AdamW(model.parameters(), lr=0.1)
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 5)
            for _ in range(5):
                loss = model(torch.randn(16, 4)).pow(2).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
            return torch.cat([p.detach().flatten() for p in model.parameters()]), opt.state_dict()

        compiler.prepare(compiling=False)
        configure_torch(num_threads=None, deterministic=True, compiling=False)
        deferred, state = train(0)
        warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
        print("flags", torch.are_deterministic_algorithms_enabled(), warn_only)
        print("real dynamo loaded", "torch._dynamo.convert_frame" in sys.modules)
        torch.save(deferred, "deferred.pt")
        import torch._dynamo.config  # anything else, here a submodule: the real module takes over
        assert torch._dynamo.config is sys.modules["torch._dynamo.config"]
        print("handed over", type(sys.modules["torch._dynamo"]).__name__, "torch._dynamo.convert_frame" in sys.modules)
        again, _ = train(0)  # now through the real torch._dynamo
        print("same after", torch.equal(deferred, again))
        print("compiled", torch.compile(lambda x: x * 2, backend="eager")(torch.ones(2)).tolist())
    """)
    # and, side by side, the same training in a process that imported dynamo the usual way, first thing
    proc, plain = [
        subprocess.Popen(
            [sys.executable, "-c", code], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for code in (script, "import torch._dynamo\n" + script.replace("deferred.pt", "plain.pt"))
    ]
    (out, err), (plain_out, plain_err) = proc.communicate(), plain.communicate()
    assert proc.returncode == 0, err[-3000:]
    assert out.splitlines() == [
        "flags True True",
        "real dynamo loaded False",
        "handed over module True",
        "same after True",
        "compiled [2.0, 2.0]",
    ], out
    assert plain.returncode == 0 and "real dynamo loaded True" in plain_out, plain_err[-3000:]
    assert torch.equal(torch.load(tmp_path / "deferred.pt"), torch.load(tmp_path / "plain.pt"))


def test_runner_defer_dynamo_0_switches_the_stand_in_off(tmp_path):
    script = (
        "import sys, torch; from runner.training import compiler; compiler.prepare(compiling=False); "
        "torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1); "
        "print(type(sys.modules['torch._dynamo']).__name__, 'torch._dynamo.convert_frame' in sys.modules)"
    )
    env = {k: v for k, v in os.environ.items() if k != "RUNNER_DEFER_DYNAMO"}
    # the two side by side
    default, off = [
        subprocess.Popen(
            [sys.executable, "-c", script],
            cwd=tmp_path,
            env=e,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for e in (env, {**env, "RUNNER_DEFER_DYNAMO": "0"})
    ]
    (default_out, default_err), (off_out, off_err) = default.communicate(), off.communicate()
    assert default_out.split() == ["_DeferredDynamo", "False"], default_err[-2000:]
    # the optimizer imported the real one
    assert off_out.split() == ["module", "True"], off_err[-2000:]


@pytest.mark.slow  # three runs, two of them compiled (a minute or two of inductor on 2 cores)
def test_a_compiled_job_after_an_eager_one_in_the_same_process_equals_it_in_a_fresh_process(tmp_path):
    # the basic launcher runs a sweep's jobs one after another in one process: job 0 installs the stand-in and
    # trains with it; job 1 compiles. It must train exactly as the same compiled job started on its own.
    args = ["model=mlp", "trainer.epochs=1", "trainer.num_threads=1"]
    runner("train", "-m", *args, "trainer.compile=false,true", "hydra.sweep.dir=sweep", cwd=tmp_path)
    eager, compiled = tmp_path / "sweep" / "0", tmp_path / "sweep" / "1"
    assert summary(eager)["pid"] == summary(compiled)["pid"]  # the precondition: one process ran both
    runner("train", *args, "trainer.compile=true", "hydra.run.dir=fresh", cwd=tmp_path)
    fresh = tmp_path / "fresh"
    assert summary(fresh)["pid"] != summary(compiled)["pid"] and summary(fresh)["status"] == "completed"
    same_run(compiled, fresh)


def _body(function):
    """A function's statements as source, its docstring left out."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    body = tree.body[0].body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    return [ast.unparse(statement) for statement in body]


def test_torch_still_does_what_runner_compiler_assumes():
    # use_deterministic_algorithms: the inductor setting, then the one eager kernels obey
    # (which compiler.deterministic calls)
    assert _body(torch.use_deterministic_algorithms) == [
        "import torch._inductor.config as inductor_config",
        "inductor_config.deterministic = mode",
        "_C._set_deterministic_algorithms(mode, warn_only=warn_only)",
    ]
    # graph_break is an empty function outside compilation, as the stand-in's is
    from torch._dynamo.decorators import graph_break

    assert _body(graph_break.__wrapped__ if hasattr(graph_break, "__wrapped__") else graph_break) == []
    # torch.optim and torch._disable_dynamo ask torch._dynamo for nothing but what the stand-in answers
    from runner.training.compiler import ANSWERED

    root = Path(torch.__file__).parent
    asked = {
        name
        for path in [*root.joinpath("optim").rglob("*.py"), root / "_compile.py"]
        for name in re.findall(r"torch\._dynamo\.(\w+)", path.read_text())
    }
    assert asked and asked <= set(ANSWERED), f"torch.optim now asks torch._dynamo for {sorted(asked - set(ANSWERED))}"


def test_a_compiled_run_still_gets_the_real_compiler_settings(tmp_path):
    script = textwrap.dedent("""
        import sys, torch
        from runner.training import compiler
        from runner.training.device import configure_torch
        compiler.prepare(compiling=False)  # an earlier job of the same process (a sweep) put the stand-in in place
        compiler.prepare(compiling=True)
        configure_torch(num_threads=None, deterministic=True, compiling=True)
        import torch._inductor.config as inductor_config
        dynamo = type(sys.modules["torch._dynamo"]).__name__
        print(dynamo, inductor_config.deterministic, torch.are_deterministic_algorithms_enabled())
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.split() == ["module", "True", "True"], proc.stderr[-2000:]


def test_runner_help_imports_neither_torch_nor_hydra_apps(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "runner", "--help"], cwd=tmp_path, capture_output=True, text=True
    )
    assert proc.returncode == 0 and "runner train" in proc.stdout
    assert "torch" not in imported(proc.stderr)

"""Start-up: a run that does not compile never imports torch's compiler (runner/training/compiler.py), and the torch
internals that this relies on are still what they were. When a test here fails after a torch upgrade, read
runner/training/compiler.py's docstring against the new torch before changing anything."""

import ast
import inspect
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from conftest import runner, same_run, summary

COMPILER = ("torch._dynamo", "torch._inductor")


def imported(importtime_stderr):
    """The modules a `python -X importtime` process imported."""
    return {line.split("|")[-1].strip() for line in importtime_stderr.splitlines() if line.startswith("import time:")}


def test_a_run_that_does_not_compile_never_imports_torchs_compiler(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "runner", "train", "trainer.epochs=1", "hydra.run.dir=run"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    modules = imported(proc.stderr)
    assert (
        "torch" in modules and "torch.optim.adam" in modules and summary(tmp_path / "run")["steps"] == 20
    )  # it trained
    assert not [m for m in modules if m.startswith(COMPILER)], sorted(m for m in modules if m.startswith(COMPILER))[:5]
    assert not [
        m for m in modules if m.startswith("sklearn")
    ]  # the digits are read from their file (runner/data/toy.py)


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
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout.splitlines()
    assert out == [
        "flags True True",
        "real dynamo loaded False",
        "handed over module True",
        "same after True",
        "compiled [2.0, 2.0]",
    ], proc.stdout
    # the same training in a process that imported dynamo the usual way, first thing
    plain = subprocess.run(
        [sys.executable, "-c", "import torch._dynamo\n" + script.replace("deferred.pt", "plain.pt")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert plain.returncode == 0 and "real dynamo loaded True" in plain.stdout, plain.stderr[-3000:]
    assert torch.equal(torch.load(tmp_path / "deferred.pt"), torch.load(tmp_path / "plain.pt"))


def test_runner_defer_dynamo_0_switches_the_stand_in_off(tmp_path):
    script = (
        "import sys, torch; from runner.training import compiler; compiler.prepare(compiling=False); "
        "torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1); "
        "print(type(sys.modules['torch._dynamo']).__name__, 'torch._dynamo.convert_frame' in sys.modules)"
    )
    env = {k: v for k, v in os.environ.items() if k != "RUNNER_DEFER_DYNAMO"}
    default = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True)
    off = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env={**env, "RUNNER_DEFER_DYNAMO": "0"},
        capture_output=True,
        text=True,
    )
    assert default.stdout.split() == ["_DeferredDynamo", "False"], default.stderr[-2000:]
    assert off.stdout.split() == ["module", "True"], off.stderr[-2000:]  # the optimizer imported the real one


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

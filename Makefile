# Two commands set everything up on a fresh clone: `make train` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The stamp is rebuilt when pyproject.toml changes, so a new dependency is picked up.
STAMP := $(VENV)/.installed

.PHONY: train test test-slow test-all lint format install clean bench bench-startup bench-load bench-sweep bench-stream gpu-check

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test,sweeps,export,tensorboard,mlflow,timm,parquet]'
	touch $(STAMP)

install: $(STAMP)

train: $(STAMP)
	$(BIN)/runner train

# The default suite: the formatter and linter, then the fast tests (see pyproject.toml's markers), two at a time.
test: lint
	$(BIN)/python -m pytest -n 2 -m "not slow" -q

# ruff's formatter and linter (pyproject.toml's [tool.ruff]) and mypy on runner/ ([tool.mypy]): fails on any file
# ruff would change or any finding of either.
lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

# Apply the formatter and the linter's safe fixes.
format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The slow tests: signals, kill -9, torchrun, launchers, compile (CI runs these after make test).
test-slow: $(STAMP)
	$(BIN)/python -m pytest -n 2 -m slow -q

# Everything.
test-all: $(STAMP)
	$(BIN)/python -m pytest -n 2 -q

clean:
	rm -rf $(VENV) *.egg-info

# Training throughput: runner vs a minimal loop vs the CIFAR-10 tutorial's DataLoader; start-up against import torch;
# with CUDA, the same cases on the GPU with bf16, channels-last and compile (docs/figures.md).
bench: $(STAMP)
	$(BIN)/python benchmarks/bench.py

# Only the start-up table and the default run's slowest imports (a minute).
bench-startup: $(STAMP)
	$(BIN)/python benchmarks/bench.py --startup

# The default run beside two busy processes against trainer.num_threads=1 beside the same, and both quiet (four
# minutes; docs/figures.md, Under load).
bench-load: $(STAMP)
	$(BIN)/python benchmarks/load.py

# A 4-job learning-rate sweep: Hydra's basic launcher against joblib (docs/figures.md).
bench-sweep: $(STAMP)
	$(BIN)/python benchmarks/sweep.py

# Image folders: the streamed path against torchvision's ImageFolder + DataLoader; the decode-once cache (docs/figures.md).
bench-stream: $(STAMP)
	$(BIN)/python benchmarks/stream.py

# The GPU acceptance check: resume bit-exactness per precision, channels-last, compile, predict and export, MFU, the
# device table; one table with the GPU's name, non-zero on any failure (docs/long-runs.md). The slow tier runs it on CPU.
gpu-check: $(STAMP)
	$(BIN)/python benchmarks/gpu_check.py --device cuda

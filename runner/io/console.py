"""What a run prints: rich on a terminal, plain and quiet otherwise, and everything into train.log.

On a terminal: the config as a tree, the model summary, a live progress bar per epoch.
Not on a terminal (CI, pipes): one line per epoch and the closing table, so logs stay readable.
The log file always gets the full record, as plain text. What is printed before a log file
is attached is kept and written when it is: a training run's train.log is written only once
its run directory lets it (runner/run/rundir.py), so a resume refused in its setup appends nothing.
"""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.tree import Tree

from runner.io.errors import StorageError


class RunConsole:
    def __init__(self, log_path: str | Path | None = None, quiet: bool = False) -> None:
        # quiet: the other processes of a torchrun job
        self.term = Console(highlight=False, quiet=quiet)
        self.interactive = self.term.is_terminal
        if not self.interactive:
            # not 80: an epoch's line fits on one line of a CI log
            self.term.width = 120
        self._log: IO[str] | None = None
        self.file: Console | None = None
        # printed before a log file was attached
        self._pending: list[tuple[tuple[Any, ...], bool]] = []
        # the log could not be written: the terminal alone gets what is printed
        self._lost = False
        if log_path:
            self.attach(log_path)

    def attach(self, log_path: str | Path) -> None:
        """From now on everything printed is appended to `log_path`, starting with what was printed before."""
        try:
            self._log = open(log_path, "a", encoding="utf-8")  # noqa: SIM115 (closed in close())
        except OSError as err:
            self._lost = True
            raise StorageError.of(log_path, err) from None
        file = self.file = Console(file=self._log, width=120, no_color=True, highlight=False)
        pending, self._pending = self._pending, []

        def write_pending() -> None:
            for objects, soft_wrap in pending:
                file.print(*objects, soft_wrap=soft_wrap)

        self._logged(write_pending)

    def _logged(self, write: Callable[[], object]) -> None:
        """`write()` to the log, flushed. A write the storage refuses is a StorageError naming the log, once: the log
        is then given up (the terminal still gets everything), so that telling this error or the one that follows
        never fails again on the log."""
        log = self._log
        # called only while a log is attached (self.file with it)
        assert log is not None
        try:
            write()
            log.flush()
        except OSError as err:
            path = log.name
            self._give_up_log()
            raise StorageError.of(path, err) from None

    def _give_up_log(self) -> None:
        self._lost = True
        log, self._log, self.file = self._log, None, None
        with contextlib.suppress(OSError):
            if log:
                log.close()

    def print(self, *objects: Any, terminal: bool = True, soft_wrap: bool = False) -> None:
        """Print to the log file, and to the terminal unless `terminal` is False (detail kept out of CI logs).
        `soft_wrap`: one line however long (a path to copy), not wrapped at the terminal's width."""
        if terminal or self.interactive:
            self.term.print(*objects, soft_wrap=soft_wrap)
        file = self.file
        if file:
            self._logged(lambda: file.print(*objects, soft_wrap=soft_wrap))
        elif not self._lost:
            self._pending.append((objects, soft_wrap))

    def tell(self, *objects: Any) -> None:
        """Print on the terminal, and to the log where it still can be written: for what is said while an error is
        being reported, which a full disk must not turn into another error."""
        self.term.print(*objects, soft_wrap=True)
        with contextlib.suppress(StorageError):
            file = self.file
            if file:
                self._logged(lambda: file.print(*objects, soft_wrap=True))

    def detail(self, *objects: Any) -> None:
        """Shown on a terminal and logged, but not printed when output is not a terminal."""
        self.print(*objects, terminal=False)

    def failed(self, err: BaseException) -> None:
        """Record why the job stopped in the log (the CLI prints it on the terminal)."""
        file = self.file
        if file:
            # escaped: an error may quote brackets (gloo's "[.../pair.cc:545]"), which are text, not markup
            text = f"error: {escape(str(err))}" if str(err) else f"error: {type(err).__name__}"
            # the error being told may be the log's own (a full disk): it is not raised a second time
            with contextlib.suppress(StorageError):
                self._logged(lambda: file.print(text))

    @contextlib.contextmanager
    def relay_warnings(self) -> Iterator[None]:
        """Every warning raised inside is printed and logged (train.log) as it happens, as a `warning: ...` line:
        runner's own (RunnerWarning) as their message, any other (torch's, a library's) with its category and
        where it was raised. Python's filters apply as usual (a library warning shows once per place)."""
        from runner.io.errors import RunnerWarning

        def show(
            message: Warning | str,
            category: type[Warning],
            filename: str,
            lineno: int,
            file: IO[str] | None = None,
            line: str | None = None,
        ) -> None:
            if issubclass(category, RunnerWarning):
                self.print(f"[yellow]warning:[/] {escape(str(message))}")
            else:
                self.print(f"[yellow]warning:[/] {category.__name__}: {escape(str(message))} ({filename}:{lineno})")

        with warnings.catch_warnings():
            warnings.simplefilter("always", RunnerWarning)
            warnings.showwarning = show
            yield

    def progress(self) -> Progress:
        return Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            console=self.term,
            transient=True,
            disable=not self.interactive,
        )

    def close(self) -> None:
        if self._log:
            log, self._log, self.file = self._log, None, None
            # every line was flushed as it was printed: a close that fails has nothing of the log left to write
            with contextlib.suppress(OSError):
                log.close()


def error(message: object) -> None:
    """A one-paragraph error on stderr, no traceback."""

    # escaped: a message quoting `format=[onnx,pt2]` or `pip install 'runner[export]'` is text, not markup
    Console(stderr=True, highlight=False, soft_wrap=True).print(f"[bold red]error:[/] {escape(str(message))}")
    sys.stderr.flush()


def config_tree(cfg: Any) -> Tree:
    """The composed config (OmegaConf.to_container's dict) as a tree: one branch per group."""
    tree = Tree("config")

    def add(branch: Tree, node: Mapping[str, Any]) -> None:
        for key, value in node.items():
            if isinstance(value, dict):
                add(branch.add(f"[bold]{key}[/]"), value)
            else:
                branch.add(f"{key}: {value}")

    add(tree, cfg)
    return tree


def model_table(
    name: str, rows: Sequence[tuple[str, str, Sequence[int] | str, int]], total_params: int, trainable: int
) -> Table:
    table = Table(title=f"model: {name}", title_justify="left")
    for col in ("layer", "type", "output shape"):
        table.add_column(col, justify="left")
    table.add_column("params", justify="right")
    for layer, kind, shape, params in rows:
        table.add_row(layer, kind, str(list(shape)) if shape != "-" else "-", f"{params:,}")
    table.caption = f"{total_params:,} parameters ({trainable:,} trainable)"
    return table


def results_table(title: str, rows: Sequence[tuple[str, object]]) -> Table:
    """A two-column table of (name, value) rows."""
    table = Table(title=title, title_justify="left")
    table.add_column("")
    table.add_column("value", justify="right")
    for name, value in rows:
        table.add_row(name, f"{value:.4f}" if isinstance(value, float) else str(value))
    return table

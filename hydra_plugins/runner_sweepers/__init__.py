"""runner's sweepers, where Hydra looks for plugins (it instantiates a sweeper only from the hydra_plugins
package); the work is in runner/sweeps/grid.py and search.py. GridSweeperConf is stored as hydra/sweeper=basic
(cli._register_sweepers); configs/hydra/sweeper/optuna.yaml names OptunaSweeper."""

from dataclasses import dataclass

from runner.sweeps import grid, search


@dataclass
class GridSweeperConf:
    """hydra/sweeper=basic (every -m sweep's): Hydra's BasicSweeperConf and runner's two keys."""

    _target_: str = "hydra_plugins.runner_sweepers.GridSweeper"
    max_batch_size: int | None = None  # jobs per launch; None: all at once (fail_fast: as many as run side by side)
    params: dict[str, str] | None = None  # sweep overrides kept in a config, e.g. {optimizer.lr: "0.1,0.01"}
    max_retries: int = 0  # a failed job is run again up to this many times, continuing from its own last.pt
    fail_fast: bool = False  # stop the sweep at the first job that failed (after its retries)


class GridSweeper(grid.GridSweeper):
    """`-m a=1,2 b=x,y`: every combination, with retries and fail_fast (hydra/sweeper=basic, the default)."""


class OptunaSweeper(search.OptunaSweeper):
    """An Optuna search whose study lives in the sweep directory (hydra/sweeper=optuna, hparams_search=...)."""

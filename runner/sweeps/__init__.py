"""`runner train -m`: runner's Hydra sweepers (grid.py: the grid, its jobs' retries and fail-fast; search.py: the
Optuna search), a sweep's jobs when it resumes and its end-of-sweep summary (jobs.py), and runs that differ only in
their seed or fold, grouped (repeats.py); k-fold cross-validation, a job per held-out fold and the out-of-fold
predictions (folds.py). Hydra loads the sweepers through hydra_plugins/runner_sweepers."""

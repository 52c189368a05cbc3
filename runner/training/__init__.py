"""Training: the loop (loop.py) and its recipe (recipe.py), all resumable state and seeding (state.py),
learning-rate schedules, builders, the device and precision, torch's compiler, metrics and torchrun; and a training
job's own steps around the loop: the weights it starts from (init_from.py) and its end (finish.py), which sit above
run/ and inference/ in the layers (tests/test_layout.py)."""

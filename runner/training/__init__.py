"""Training: the loop (loop.py) and its recipe (recipe.py), all resumable state and seeding (state.py),
learning-rate schedules, builders, the device and precision, torch's compiler, metrics and torchrun."""

"""Training: the loop (loop.py) and its recipe (recipe.py), all resumable state and seeding (state.py), learning-rate
schedules (schedules.py), builders (build.py), the device and precision (device.py), torch's compiler (compiler.py),
metrics (metrics.py), torchrun (distributed.py), the checkpoints kept and averaged (checkpoints.py), the FLOP count
(flops.py), freezing (freezing.py) and the profiler (profiling.py); and a training job's own steps around the loop,
which sit above run/ and inference/ in the layers (tests/test_layout.py): its setup as an outline of keyword calls
(setup.py, its data in setup_data.py), the weights it starts from (init_from.py) and its end (finish.py)."""

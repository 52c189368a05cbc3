"""What every layer above uses: one-paragraph errors, atomic files, safe torch.save/load, the console,
plots, signals and the environment a run records."""

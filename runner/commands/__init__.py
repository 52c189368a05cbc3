"""What `runner --help` lists, one module per command: train, eval, predict, export, lr_find, report, diff."""

"""The config before anything runs: the command line before Hydra reads it (arguments.py), Hydra's grammar and errors
in runner's words (command_line.py), checks of a composed config (checks.py), runner's OmegaConf resolvers
(resolvers.py)."""

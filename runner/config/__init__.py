"""Checking a composed config before anything runs (checks.py) and runner's OmegaConf resolvers (resolvers.py)."""

"""Helpers the tests share that are more than a fixture (conftest.py holds the fixtures)."""

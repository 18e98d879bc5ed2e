"""The `lakefn` pytest fixture (registered through the `pytest11` entry point)."""

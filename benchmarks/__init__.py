"""The project's benchmark: `python -m benchmarks.run [--quick] [--json PATH]`."""

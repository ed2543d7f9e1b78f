"""Issue 5's benchmark: `python -m benchmarks.run [--quick] [--json PATH]`."""

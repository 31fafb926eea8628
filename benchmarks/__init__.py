"""Benchmarks of baton-temporal against hand-written and plain Temporal code.

Not part of the test suite. Run ``python -m benchmarks.run`` (see ``benchmarks/README.md``).
"""

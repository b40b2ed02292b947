"""Performance harness: plain scripts, ``python -m benchmarks.<name>``, printing figures.

Not part of the test run's pass/fail (docs/architecture.md, Budgets).
"""

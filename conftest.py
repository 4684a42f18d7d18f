"""Root pytest configuration: nbval compares notebook outputs with tolerant numbers.

See tests/nbval_tolerance.py for what is compared strictly and what within a tolerance.
"""
pytest_plugins = ["tests.nbval_tolerance"]

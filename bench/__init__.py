"""Benchmark harness of grizzly-partner: run with `uv run --frozen --no-sync python -m bench all --quick`.

Every figure is measured side by side in one run on one machine, next to a reference (a trivial Starlette endpoint,
the raw Redis claim script, raw aiokafka), so the ratios stay meaningful on a noisy shared machine.
"""

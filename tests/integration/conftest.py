"""Fixtures of the integration tests live in tests/integration/fixtures.py (loaded by the root conftest.py so that
services/*/tests share them). Add fixtures used only here below."""

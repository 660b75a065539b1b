"""Root conftest: the shared fixtures (real Redis, real Kafka, fake platform, service processes) for every test dir."""

pytest_plugins = ["tests.integration.fixtures"]

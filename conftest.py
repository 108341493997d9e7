"""Loads the shared test fixtures (real Kafka and store) for every test in the workspace."""

pytest_plugins = ["pmm_runtime.testing"]

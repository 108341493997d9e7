"""Observability of real service processes and apps: JSON logs, traces, metrics."""

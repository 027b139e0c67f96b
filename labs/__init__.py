"""Training labs: guided labs whose steps are checked from real state, each in a sandbox of its own.

The top floor: it may import every app, and nothing imports it (docs/architecture.md).
"""

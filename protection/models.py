"""Models of the protection app (built by the later issues)."""

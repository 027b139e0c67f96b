"""Models of the vaults app (built by the later issues)."""

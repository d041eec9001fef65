"""One module per API resource (see controller/api/registry.py for how to add one)."""

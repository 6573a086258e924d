"""Deployable services. `python -m services --target all` runs any subset of them in one process."""

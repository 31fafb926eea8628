"""Revisions of the ledger schema (see the package docstring above)."""

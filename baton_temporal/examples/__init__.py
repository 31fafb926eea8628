"""Flows that ship with the library. ``seed`` is the product page's multi-model analysis,
which ``baton demo`` and ``baton dev`` run."""

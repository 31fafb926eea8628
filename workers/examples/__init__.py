"""Example step modules. ``seed`` is the product page's multi-model analysis."""

"""Recorded workflow histories, replayed in CI against the current workflow code.

``python -m tests.histories.record`` (``make histories``) records them; see README.md
("Upgrades are safe") and ``baton_temporal/workflow/_versioning.py`` for the rule.
"""

"""The worker program and the example steps of the seed page."""

"""The seed page's example app, as a step module for the worker program::

    BATON_STEPS=workers.examples.seed python -m workers.worker

The steps and flows live in :mod:`baton_temporal.examples.seed`, which ``baton demo``
runs as well; this module names them for workers started from this repository.
"""

from baton_temporal.examples.seed import *  # noqa: F403
from baton_temporal.examples.seed import __all__ as __all__

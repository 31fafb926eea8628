"""Fixtures of the CLI tests: a user's environment pointed at the test's Temporal."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from ._util import clean_env


@pytest.fixture
def temporal_address(temporal_env: WorkflowEnvironment) -> str:
    return temporal_env.client.service_client.config.target_host


@pytest.fixture
def cli_env(temporal_address: str, tmp_path: Path) -> dict[str, str]:
    """The environment of a user pointed at the test's Temporal and a ledger of its own."""
    return clean_env(
        TEMPORAL_ADDRESS=temporal_address,
        BATON_LEDGER_URL=f"sqlite:///{tmp_path / 'ledger.sqlite3'}",
    )

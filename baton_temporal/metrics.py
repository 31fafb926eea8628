"""Prometheus metrics of a worker: the Temporal SDK's own, with the ledger's beside them.

:func:`enable_prometheus` makes the SDK serve its metrics (task slots, poll and schedule
latencies, activity failures...) at ``http://<host>:<port>/metrics``. The ledger counters
below are created on the same meter, so they appear on the same page:

=================================== =========================================================
``baton_ledger_writes``             usage rows written to the ledger (``path``: ``step`` when
                                    a step wrote its own calls, ``record_usage`` when the
                                    workflow wrote usage a step had to defer)
``baton_ledger_write_failures``     usage rows whose write failed (ledger down, timed out)
``baton_ledger_usage_deferred``     usage rows handed to the workflow because the write
                                    failed; they wait in Temporal history
``baton_ledger_pending_usage``      deferred rows not yet written, as this worker saw them
                                    (sum over the workers for the whole fleet)
``baton_ledger_up``                 1 when the last ledger check (health endpoint) succeeded
=================================== =========================================================

Without :func:`enable_prometheus` the counters are still kept in the process (the health
endpoint shows them); nothing is exported.

Example::

    from baton_temporal.metrics import enable_prometheus, ledger_counters
    enable_prometheus(9464)          # before the Temporal client is created
    ledger_counters().snapshot()     # {"writes": 0, "write_failures": 0, ...}
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

__all__ = ["LedgerCounters", "enable_prometheus", "ledger_counters"]

_LOCK = threading.Lock()
_ENABLED: str | None = None


@dataclass
class LedgerCounters:
    """Process-wide ledger counters, mirrored to the SDK's metric meter when there is one."""

    writes: int = 0
    write_failures: int = 0
    usage_deferred: int = 0
    usage_recovered: int = 0
    ledger_up: int | None = None
    _instruments: dict[str, Any] = field(default_factory=dict, repr=False)

    def bind(self, meter: Any) -> None:
        """Create the instruments on a ``temporalio.common.MetricMeter``."""
        self._instruments = {
            "writes": meter.create_counter(
                "baton_ledger_writes", "usage rows written to the ledger", "rows"
            ),
            "write_failures": meter.create_counter(
                "baton_ledger_write_failures", "usage rows whose ledger write failed", "rows"
            ),
            "usage_deferred": meter.create_counter(
                "baton_ledger_usage_deferred",
                "usage rows deferred to the workflow because the ledger write failed",
                "rows",
            ),
            "pending": meter.create_gauge(
                "baton_ledger_pending_usage", "deferred usage rows not written yet", "rows"
            ),
            "up": meter.create_gauge("baton_ledger_up", "1 if the last ledger check passed"),
        }
        self._instruments["pending"].set(self.pending)

    @property
    def pending(self) -> int:
        return max(0, self.usage_deferred - self.usage_recovered)

    def wrote(self, rows: int, *, path: str = "step") -> None:
        with _LOCK:
            self.writes += rows
            if path == "record_usage":
                self.usage_recovered += rows
        if "writes" in self._instruments:
            self._instruments["writes"].add(rows, {"path": path})
            self._instruments["pending"].set(self.pending)

    def failed(self, rows: int, *, deferred: bool) -> None:
        with _LOCK:
            self.write_failures += rows
            if deferred:
                self.usage_deferred += rows
        if "writes" in self._instruments:
            self._instruments["write_failures"].add(rows)
            if deferred:
                self._instruments["usage_deferred"].add(rows)
            self._instruments["pending"].set(self.pending)

    def set_up(self, up: bool) -> None:
        self.ledger_up = int(up)
        if "up" in self._instruments:
            self._instruments["up"].set(int(up))

    def snapshot(self) -> dict[str, int | None]:
        return {
            "writes": self.writes,
            "write_failures": self.write_failures,
            "usage_deferred": self.usage_deferred,
            "pending_usage": self.pending,
            "ledger_up": self.ledger_up,
        }


_COUNTERS = LedgerCounters()


def ledger_counters() -> LedgerCounters:
    """This process's ledger counters."""
    return _COUNTERS


def enable_prometheus(port: int, host: str = "0.0.0.0") -> str:
    """Serve the SDK's metrics and the ledger counters at ``http://host:port/metrics``.

    Installs a new default Temporal runtime, so call it before creating the client the
    worker uses. Calling it again with the same address does nothing; another address
    raises ``RuntimeError`` (one endpoint per process).
    """
    from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

    global _ENABLED
    address = f"{host}:{port}"
    with _LOCK:
        if address == _ENABLED:
            return address
        if _ENABLED is not None:
            raise RuntimeError(f"Prometheus metrics are already served at {_ENABLED}")
        try:
            runtime = Runtime(
                telemetry=TelemetryConfig(
                    metrics=PrometheusConfig(bind_address=address, counters_total_suffix=True)
                )
            )
        except Exception as err:
            raise ValueError(
                f"cannot serve Prometheus metrics at {address} ({err}); set "
                "BATON_METRICS_PORT to a free port"
            ) from err
        Runtime.set_default(runtime, error_if_already_set=False)
        _ENABLED = address
    _COUNTERS.bind(runtime.metric_meter)
    return address

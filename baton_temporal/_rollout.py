"""Rollouts that never cut a step: the drain rule and worker deployment versioning.

The drain rule: on SIGTERM a worker stops taking steps and gives the running ones
``BATON_GRACEFUL_SHUTDOWN_S`` to finish. A step may run for its start-to-close timeout
(``DEFAULT_START_TO_CLOSE``, 10 minutes, unless the step or the flow sets one), so the
drain must be at least the longest step timeout, and the orchestrator's kill timer
(``terminationGracePeriodSeconds``, ``stop_grace_period``) longer still. The default
drain is the default step timeout plus :data:`DRAIN_MARGIN`; a step declared with a
longer timeout makes the worker warn at start, naming the step and the fix.

Worker versioning: with ``BATON_BUILD_ID`` set (the image sets it from its build
argument) the worker polls as version ``BATON_DEPLOYMENT_NAME``/``BATON_BUILD_ID`` and its
flows are pinned: a run stays on the version that started it, new runs go to the
deployment's current version.

Example::

    drain_warnings(steps, timedelta(seconds=630))   # ["step 'slow' may run 1:00:00 ..."]
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from .flow._options import DEFAULT_START_TO_CLOSE

__all__ = ["DEFAULT_DRAIN", "DRAIN_MARGIN", "drain_warnings", "longest_step_timeout"]

log = logging.getLogger("baton_temporal.worker")

# Time for a step that finishes at its timeout to report its result and usage.
DRAIN_MARGIN = timedelta(seconds=30)
DEFAULT_DRAIN = DEFAULT_START_TO_CLOSE + DRAIN_MARGIN


def _step_timeout(step: Any) -> timedelta:
    opts = getattr(step, "options", None)
    timeouts = [
        getattr(opts, "start_to_close_timeout", None),
        getattr(opts, "schedule_to_close_timeout", None),
    ]
    given = [t for t in timeouts if t is not None]
    return min(given) if given else DEFAULT_START_TO_CLOSE


def longest_step_timeout(steps: Iterable[Any]) -> timedelta:
    """The longest time one attempt of these steps may run (their own defaults)."""
    return max((_step_timeout(s) for s in steps), default=DEFAULT_START_TO_CLOSE)


def drain_warnings(steps: Iterable[Any], drain: timedelta) -> list[str]:
    """One message per step whose declared timeout outlasts the drain."""
    found = []
    for step in steps:
        timeout = _step_timeout(step)
        if timeout + DRAIN_MARGIN > drain:
            found.append(
                f"step {step.name!r} may run {timeout} but a rollout drains running steps "
                f"for only {drain}: a rollout would cut it and its LLM calls would be made "
                f"(and billed) again; set BATON_GRACEFUL_SHUTDOWN_S to at least "
                f"{int((timeout + DRAIN_MARGIN).total_seconds())} (and the pod's "
                "terminationGracePeriodSeconds above that), or give the step a shorter "
                "start_to_close_timeout"
            )
    return found


def deployment_config(deployment_name: str, build_id: str) -> Any:
    """The worker's deployment version, flows pinned to the version that started them."""
    from temporalio.common import VersioningBehavior, WorkerDeploymentVersion
    from temporalio.worker import WorkerDeploymentConfig

    return WorkerDeploymentConfig(
        version=WorkerDeploymentVersion(deployment_name=deployment_name, build_id=build_id),
        use_worker_versioning=True,
        default_versioning_behavior=VersioningBehavior.PINNED,
    )


async def promote_if_first(client: Any, deployment_name: str, build_id: str) -> bool:
    """Make this version current if the deployment has no current version yet (a first
    install), so new runs have somewhere to go. Later versions are promoted by the
    operator (``temporal worker deployment set-current-version``). True if promoted, False
    if the deployment already has a current version; ``LookupError`` while the deployment
    is not registered yet (no worker of it has polled)."""
    from temporalio.api.workflowservice.v1 import (
        DescribeWorkerDeploymentRequest,
        SetWorkerDeploymentCurrentVersionRequest,
    )
    from temporalio.service import RPCError, RPCStatusCode

    try:
        reply = await client.workflow_service.describe_worker_deployment(
            DescribeWorkerDeploymentRequest(
                namespace=client.namespace, deployment_name=deployment_name
            )
        )
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:
            raise
        # Not registered until a worker of it has polled: the caller tries again.
        raise LookupError(f"worker deployment {deployment_name!r} is not registered yet") from None
    routing = reply.worker_deployment_info.routing_config
    if routing.current_deployment_version.build_id or routing.current_version not in (
        "",
        "__unversioned__",
    ):
        return False
    await client.workflow_service.set_worker_deployment_current_version(
        SetWorkerDeploymentCurrentVersionRequest(
            namespace=client.namespace,
            deployment_name=deployment_name,
            build_id=build_id,
            identity=client.identity,
            conflict_token=reply.conflict_token,
        )
    )
    log.info(
        "worker deployment %r had no current version: %s is now current", deployment_name, build_id
    )
    return True

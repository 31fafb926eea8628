"""Admitting steps into flight: a concurrency window and a per-workflow-task byte budget.

Why both, and why they hold at any width:

* **Pending activities.** Temporal refuses more than 2,000 pending activities per run.
  The flow workflow admits at most :data:`DEFAULT_WINDOW` steps at once (a flow's
  ``max_concurrency`` may only lower it), and a step holds its slot for its activity and
  its record-usage activity alike, so a run never has more than the window pending.

* **Workflow-task completions.** Temporal rejects a completion over 4 MB. Every ready
  step's activity is scheduled by a command in the same completion, and each command
  carries the step's input payload (its args and the upstream results it reads). The
  worker's payload store (``baton_temporal.payloads``) moves any payload of
  ``BATON_PAYLOAD_THRESHOLD`` bytes or more out of history, which bounds ONE command,
  but not their number: 40 inputs of 250 KB each are 10 MB in one completion. So the
  workflow also budgets what it schedules per workflow task: each step is charged its
  input's JSON size, capped at :data:`MAX_INLINE_PAYLOAD` (a bigger payload goes to the
  store and costs a claim of a few hundred bytes), plus :data:`COMMAND_OVERHEAD` for the
  command itself and the codec's envelope. Once :data:`TASK_BYTE_BUDGET` is spent, further
  steps wait for the next workflow task (the next step to finish brings it; a 1 ms timer
  when none is in flight). The step inputs of one completion thus add up to at most
  the budget (2 MiB; a single step's charge is at most 258 KiB), whatever the width,
  leaving room under 4 MB for the other commands (record-usage, timers, markers).
  The charge is an upper bound as long as the payload store's threshold is at most
  :data:`MAX_INLINE_PAYLOAD`; ``baton_temporal.payloads`` refuses a higher one.

The charge is computed from data in the run's history only (sizes of args and results),
so replay makes the same choices. Example::

    window = Window(limit=1000, budgeted=True)
    if window.charge(Window.input_cost(args_size, [result_sizes[d] for d in deps])):
        ...  # schedule the step now; else wait for the next workflow task
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from temporalio import workflow

__all__ = [
    "COMMAND_OVERHEAD",
    "DEFAULT_WINDOW",
    "MAX_INLINE_PAYLOAD",
    "TASK_BYTE_BUDGET",
    "TASK_STEP_BUDGET",
    "Window",
    "json_size",
]

# Temporal allows 2,000 pending activities per run; half of it leaves room for the
# record-usage activities of a hand-written workflow's own helpers and for safety.
DEFAULT_WINDOW = 1000
# The largest payload a baton worker keeps in history (its payload store's threshold may
# be lower, never higher): 256 KiB, Temporal's own warning size.
MAX_INLINE_PAYLOAD = 256 * 1024
# What one scheduled step costs on top of its input: command fields, headers, the codec's
# envelope (nonce, tag, key id, metadata), the claim when the input goes to the store.
COMMAND_OVERHEAD = 2 * 1024
# Step input bytes per workflow task; Temporal caps a completion at 4 MB.
TASK_BYTE_BUDGET = 2 * 1024 * 1024
# Steps scheduled per workflow task: the window's size. A lower cap was tried and
# measured (1,500 ready steps, 2 cores): at 200 per task the server answered 9-11
# completions with "workflow task not found", each evicting and replaying the run, for
# ~2x the worker CPU; at 1,000 none, and the same CPU as before this module. Scheduling
# costs ~0.3 ms of workflow CPU per step, so 1,000 stay well inside the 2 s deadlock
# detector now that the scheduler keeps no task per waiting step (_scheduler.py).
TASK_STEP_BUDGET = DEFAULT_WINDOW


def json_size(value: Any) -> int:
    """Bytes of ``value`` as Temporal's default JSON converter writes it."""
    return len(json.dumps(value, separators=(",", ":"), sort_keys=True, default=str))


class Window:
    """The admission rule: ``limit`` steps in flight, and the per-workflow-task budget.

    The scheduler (``_scheduler.py``) asks :meth:`charge` before it schedules a step; a
    False answer means: wait for the next workflow task.
    """

    def __init__(self, limit: int, *, budgeted: bool) -> None:
        self.limit = limit
        self._budgeted = budgeted
        self._task_mark = -1
        self._spent = 0
        self._count = 0

    @staticmethod
    def input_cost(own_size: int, read_sizes: Iterable[int]) -> int:
        """What scheduling a step costs: its input's JSON size, capped (see module doc)."""
        return min(own_size + sum(read_sizes), MAX_INLINE_PAYLOAD) + COMMAND_OVERHEAD

    def charge(self, cost: int) -> bool:
        """Take ``cost`` from this workflow task's budget; False: wait for the next task."""
        if not self._budgeted:
            return True
        # The history length identifies the workflow task: it is the same for every
        # activation of one task (local activities), and grows with the next one.
        mark = workflow.info().get_current_history_length()
        if mark != self._task_mark:
            self._task_mark, self._spent, self._count = mark, 0, 0
        if self._count >= TASK_STEP_BUDGET or (
            self._spent and self._spent + cost > TASK_BYTE_BUDGET
        ):
            return False
        self._spent += cost
        self._count += 1
        return True

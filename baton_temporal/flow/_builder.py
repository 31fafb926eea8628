"""The flow builder: ``baton.new(...).add(...).add(...)``, then ``start``."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from pydantic import ValidationError
from temporalio.common import RetryPolicy

from ._budget import check_budget
from ._errors import FlowError, StepDefinitionError
from ._json import find_non_json
from ._limits import MAX_CONCURRENCY, MAX_JSON_DEPTH, heartbeat_problem, id_problem
from ._options import StepOptions, StepRef
from ._spec import (
    FLOW_WORKFLOW_TYPE,
    FlowSpec,
    StepSpec,
    check_flow,
    name_problem,
    parse_flow,
    pydantic_problems,
)

if TYPE_CHECKING:
    from temporalio.client import Client, WorkflowHandle

    from ..workflow import FlowResult

__all__ = ["Flow", "new"]

P = ParamSpec("P")
T = TypeVar("T")


@dataclass(frozen=True)
class Flow:
    """An immutable DAG of steps. Every method returns a new flow.

    Example::

        flow = (
            baton.new(workflow_name="brief")
            .add("fetch", fetch_sources, {"url": url})
            .add("summarize", summarize, deps=["fetch"])
            .add("keywords", keywords, deps=["fetch"])
            .add("compile", compile_brief, deps=["summarize", "keywords"])
        )
        handle = await flow.start(client, task_queue="baton")
        result = await handle.result()
        result.results["compile"]
    """

    spec: FlowSpec
    # True when nobody chose the workflow id (``baton.new`` without one, or a flow file
    # without one): it is made up for this object only, so ``to_json`` leaves it out and
    # each start of the written file gets a fresh id (and its own ledger rows).
    generated_id: bool = field(default=False, compare=False, repr=False)

    # -- building -----------------------------------------------------------------------

    @property
    def workflow_name(self) -> str:
        return self.spec.workflow_name

    @property
    def workflow_id(self) -> str:
        assert self.spec.workflow_id is not None
        return self.spec.workflow_id

    @property
    def step_names(self) -> list[str]:
        return [s.name for s in self.spec.steps]

    def node(self, name: str) -> StepSpec:
        """The node named ``name``."""
        for s in self.spec.steps:
            if s.name == name:
                return s
        raise FlowError(
            f"flow {self.workflow_name!r} has no step {name!r}; it has {self.step_names}"
        )

    def add(
        self,
        name: str,
        step: StepRef | str,
        args: Mapping[str, Any] | None = None,
        *,
        deps: Sequence[str] = (),
        ignore_failed: bool = False,
        ignore_cancelled: bool = False,
        quorum: int | None = None,
        cancel_stragglers: bool | None = None,
        options: StepOptions | None = None,
        start_to_close_timeout: timedelta | None = None,
        retry_policy: RetryPolicy | None = None,
        task_queue: str | None = None,
        local: bool | None = None,
        _fan_out: dict[str, str] | None = None,
    ) -> Flow:
        """Add step ``name`` running ``step`` with ``args``, after ``deps``.

        ``ignore_failed`` / ``ignore_cancelled``: run even when a dependency failed for
        good / was cancelled (its result is then absent). ``quorum=k``: run as soon as
        k dependencies completed, without waiting for the others; the dependencies still
        running then are cancelled (``cancel_stragglers=False`` lets them finish; a
        dependency that another step needs is never cancelled). If the flow has a
        model map (``multi_model.configure``) naming this step, ``"workflow_model"`` is
        added to ``args`` (an explicit ``"workflow_model"`` in ``args`` wins).

        Example::

            flow.add("report", report, {"format": "md"}, deps=["assess"],
                     start_to_close_timeout=timedelta(minutes=2))
        """
        bad = name_problem(name)
        if bad:
            raise FlowError(bad)
        if name in self.step_names:
            raise FlowError(
                f"flow {self.workflow_name!r} already has a step named {name!r}; "
                "give each step its own name"
            )
        step_name, default_options = _step_ref(name, step)
        if cancel_stragglers is not None and quorum is None:
            raise FlowError(
                f"step {name!r}: cancel_stragglers applies only with quorum=k; add a quorum "
                "or drop it"
            )
        if quorum is not None and (
            isinstance(quorum, bool) or not isinstance(quorum, int) or quorum < 1
        ):
            # Checked here: pydantic would read True as 1 (or name a JSON boolean).
            raise FlowError(
                f"step {name!r}: quorum is {quorum!r}; use a whole number >= 1 of dependencies "
                "that must complete, e.g. quorum=2, or leave it None"
            )
        if isinstance(deps, str):
            raise FlowError(
                f"deps of {name!r} must be a list of step names, not the string {deps!r}; "
                f"write deps=[{deps!r}]"
            )
        args_dict = _check_args(name, args)
        model = self.spec.models.get(name)
        if model is not None and "workflow_model" not in args_dict:
            args_dict = {**args_dict, "workflow_model": model}
        try:
            node_options = StepOptions(
                start_to_close_timeout=start_to_close_timeout,
                retry_policy=retry_policy,
                task_queue=task_queue,
                local=local,
            ).merged_over(options or StepOptions())
            merged = node_options.merged_over(default_options)
            too_short = heartbeat_problem(
                "heartbeat_timeout", merged.heartbeat_timeout, local=merged.local
            )
            if too_short:
                raise ValueError(too_short)
            node = StepSpec(
                name=name,
                step=step_name,
                args=args_dict,
                deps=tuple(deps),
                ignore_failed=ignore_failed,
                ignore_cancelled=ignore_cancelled,
                quorum=quorum,
                cancel_stragglers=cancel_stragglers,
                options=merged.to_json(),
                fan_out=_fan_out,
            )
        except ValidationError as err:  # pydantic's own dump names no fix: one line each
            raise FlowError(
                f"step {name!r}: " + "; ".join(pydantic_problems(err, "step"))
            ) from None
        except ValueError as err:
            raise FlowError(f"step {name!r}: {err}") from None
        return dataclasses.replace(
            self, spec=self.spec.model_copy(update={"steps": (*self.spec.steps, node)})
        )

    def pipe(self, fn: Callable[Concatenate[Flow, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(self, *args, **kwargs)``: lets Baton's ``|>`` pipelines read the same.

        Example::

            flow = baton.new(workflow_name="a").pipe(multi_model.configure, {"parse": "gpt-4o"})
        """
        return fn(self, *args, **kwargs)

    def with_models(self, models: Mapping[str, str]) -> Flow:
        """A copy whose model map is ``models`` (see ``multi_model.configure``)."""
        return dataclasses.replace(self, spec=self.spec.model_copy(update={"models": dict(models)}))

    # -- checking and serialising --------------------------------------------------------

    def validate(self) -> Flow:
        """Check the graph (unknown deps, cycles, quorums); return self if sound."""
        problems = check_flow(self.spec)
        # Here, not in check_flow: that one runs in workflow code too, where a run started
        # before this check must still replay.
        for s in self.spec.steps:
            opts = s.options or {}
            too_short = heartbeat_problem(
                f"step {s.name!r}: heartbeat_timeout",
                opts.get("heartbeat_timeout"),
                local=opts.get("local"),
            )
            if too_short:
                problems.append(too_short)
        if problems:
            raise FlowError(f"flow {self.workflow_name!r} is invalid: " + "; ".join(problems))
        return self

    def to_dict(self) -> dict[str, Any]:
        """The flow as JSON-ready data (schema version 1; see ``baton_temporal.flow``).

        A workflow id that was generated (none given to ``baton.new``) is left out, so
        every start of the data gets a fresh one; an id you chose is kept.

        Example::

            baton.new(workflow_name="a").add("p", parse_doc).to_dict()  # no "workflow_id"
            baton.new(workflow_name="a", workflow_id="a-1").to_dict()["workflow_id"]  # "a-1"
        """
        self.validate()
        data = self.spec.model_dump(mode="json", exclude_none=True)
        if self.generated_id:
            data.pop("workflow_id", None)
        return data

    def to_json(self, *, indent: int | None = None) -> str:
        """The flow as a JSON string, ready for ``temporal workflow start --input`` or
        ``baton start`` (without a generated workflow id: see :meth:`to_dict`)."""
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_json(cls, data: str | bytes | Mapping[str, Any]) -> Flow:
        """Read a flow written by :meth:`to_json` (a string, bytes or parsed data)."""
        if isinstance(data, str | bytes):
            try:
                data = json.loads(data)
            except json.JSONDecodeError as err:
                raise FlowError(
                    f"flow JSON is malformed at line {err.lineno} column {err.colno}: {err.msg}"
                ) from None
            except RecursionError:
                raise FlowError(
                    "flow JSON nests too deeply to read; step args may nest at most "
                    f"{MAX_JSON_DEPTH} levels: flatten them (or pass deep data as a string)"
                ) from None
            except (ValueError, UnicodeDecodeError) as err:
                # Integers of more than 4,300 digits, bytes that are not UTF-8.
                raise FlowError(f"flow JSON cannot be read: {err}") from None
        try:
            spec = parse_flow(dict(data) if isinstance(data, Mapping) else data)
        except ValueError as err:
            raise FlowError(str(err)) from None
        if spec.workflow_id is None:
            # A fresh id for each read: each start of the same file is a run of its own.
            return cls(spec.model_copy(update={"workflow_id": str(uuid.uuid4())}), True)
        return cls(spec)

    # -- running -------------------------------------------------------------------------

    async def start(
        self, client: Client, *, task_queue: str = "baton", **start_options: Any
    ) -> WorkflowHandle[Any, FlowResult]:
        """Start the flow on Temporal (Baton's ``insert!``); returns the workflow handle.

        ``start_options`` go to ``Client.start_workflow`` (``id_reuse_policy``,
        ``execution_timeout``, ``search_attributes``...).
        """
        from ..payloads import with_payload_store
        from ..workflow import FlowResult

        data = self.to_dict()
        # Big args and the FlowResult may live in the payload store: read them with it.
        client = with_payload_store(client)
        # By type name, so that result_type gives a typed FlowResult back.
        return await client.start_workflow(
            FLOW_WORKFLOW_TYPE,
            data,
            id=start_options.pop("id", self.workflow_id),
            task_queue=task_queue,
            result_type=FlowResult,
            **start_options,
        )

    async def run(
        self, client: Client, *, task_queue: str = "baton", **start_options: Any
    ) -> FlowResult:
        """Start the flow and wait for its result."""
        handle = await self.start(client, task_queue=task_queue, **start_options)
        return await handle.result()

    def __repr__(self) -> str:
        return f"Flow({self.workflow_name!r}, steps={self.step_names})"


def new(
    *,
    workflow_name: str,
    workflow_id: str | None = None,
    debug: bool = False,
    max_concurrency: int | None = None,
    max_history_events: int | None = None,
    budget_usd: Decimal | str | int | float | None = None,
) -> Flow:
    """Begin a flow (Baton's ``Baton.new``).

    ``workflow_id`` defaults to a fresh UUID; it becomes the Temporal workflow id.
    ``debug=True`` saves the full request and response of every LLM call.
    ``max_concurrency`` bounds how many of this run's steps run at once (at most 1,000,
    the default: Temporal allows 2,000 pending activities per run).
    ``max_history_events``: the run continues as new once its history has this many
    events (default 10,000; 20 to 40,000), carrying every step's state and result over.
    ``budget_usd`` caps the flow's LLM spend in US dollars (a Decimal, a string like
    ``"2.50"`` or a number): a ``call_llm`` whose worst case would pass it is refused with
    :class:`BudgetExceeded` and the flow starts no further steps (docs/budgets.md).

    Example::

        flow = baton.new(workflow_name="brief", max_concurrency=4, budget_usd="2.50")
    """
    if not isinstance(workflow_name, str) or not workflow_name.strip():
        raise FlowError(
            f"baton.new() needs a non-empty workflow_name string, got {workflow_name!r}; "
            "e.g. baton.new(workflow_name='brief')"
        )
    if max_concurrency is not None and (
        not isinstance(max_concurrency, int)
        or isinstance(max_concurrency, bool)
        or not 1 <= max_concurrency <= MAX_CONCURRENCY
    ):
        raise FlowError(
            f"max_concurrency must be a whole number of steps from 1 to {MAX_CONCURRENCY:,} "
            f"(Temporal keeps at most {MAX_CONCURRENCY:,} activities of a run pending), got "
            f"{max_concurrency!r}; leave it None for no limit"
        )
    for what, value in (("workflow_name", workflow_name), ("workflow_id", workflow_id)):
        bad = id_problem(what, value) if value is not None else None
        if bad:
            raise FlowError(f"baton.new(): {bad}")
    if max_history_events is not None and (
        not isinstance(max_history_events, int)
        or isinstance(max_history_events, bool)
        or not 20 <= max_history_events <= 40_000
    ):
        raise FlowError(
            f"max_history_events must be a whole number from 20 to 40000, got "
            f"{max_history_events!r}; leave it None for the default (10,000)"
        )
    try:
        budget = None if budget_usd is None else check_budget(budget_usd, "budget_usd")
    except ValueError as err:
        raise FlowError(f"baton.new(): {err}") from None
    spec = FlowSpec.model_construct(
        budget_usd=budget,
        workflow_name=workflow_name,
        workflow_id=workflow_id or str(uuid.uuid4()),
        debug=bool(debug),
        max_concurrency=max_concurrency,
        max_history_events=max_history_events,
    )
    return Flow(spec, generated_id=workflow_id is None)


def _step_ref(name: str, step: Any) -> tuple[str, StepOptions]:
    if isinstance(step, StepRef):
        return step.name, step.options
    if isinstance(step, str):
        if not step.strip():
            raise FlowError(f"step {name!r}: the step reference is empty; name a registered step")
        return step, StepOptions()
    if callable(step):
        label = getattr(step, "__qualname__", repr(step))
        raise StepDefinitionError(
            f"step {name!r}: {label} is a plain function, not a step; decorate it with "
            "@baton.step (and register it with BatonPlugin(steps=[...]))"
        )
    raise StepDefinitionError(
        f"step {name!r}: expected a @baton.step function or a registered step name, "
        f"got {type(step).__name__} {step!r}"
    )


def _check_args(name: str, args: Mapping[str, Any] | None) -> dict[str, Any]:
    if args is None:
        return {}
    if not isinstance(args, Mapping):
        raise FlowError(
            f"args of step {name!r} must be a dict of JSON values, got {type(args).__name__}"
        )
    problem = find_non_json(dict(args), "args")
    if problem:
        raise FlowError(
            f"args of step {name!r} are not JSON-serialisable: {problem}; pass only str, "
            "int, float, bool, None, lists and dicts with string keys, nested at most "
            f"{MAX_JSON_DEPTH} deep (convert dates, decimals and objects to strings or "
            "numbers first)"
        )
    return dict(args)

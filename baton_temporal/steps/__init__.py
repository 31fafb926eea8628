"""Steps on the worker side: ``@baton.step``, the :class:`Job` a step receives, and the
usage accounting around every attempt (``call_llm`` and the ledger interceptor).

Example::

    from baton_temporal.steps import Job, step

    @step
    async def parse_doc(job: Job) -> dict:
        return {"sections": job.args["text"].split("\\n\\n")}
"""

from ._job import Job, get_all_results, get_result
from ._step import Step, step

__all__ = ["Job", "Step", "get_all_results", "get_result", "step"]

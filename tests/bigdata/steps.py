"""Steps of the big-data tests: documents of a chosen size, and readers that hash them."""

from __future__ import annotations

import hashlib

import baton_temporal as baton


def text_of(size: int, seed: str) -> str:
    """``size`` ASCII characters that differ by ``seed`` (so no two documents share a hash)."""
    block = hashlib.sha256(seed.encode()).hexdigest()
    return (block * (size // len(block) + 1))[:size]


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@baton.step
async def make_doc(job: baton.Job) -> dict:
    """A document of ``args['size']`` characters."""
    return {"doc": text_of(job.args["size"], job.args.get("seed", job.step))}


@baton.step
async def read_docs(job: baton.Job) -> dict:
    """Hashes of every upstream document it can read, and optionally a document of its own."""
    out: dict = {
        "read": {name: digest(r["doc"]) for name, r in sorted(job.results.items()) if "doc" in r},
        "sizes": {name: len(r.get("doc", "")) for name, r in sorted(job.results.items())},
    }
    if job.args.get("size"):
        out["doc"] = text_of(job.args["size"], job.step)
    return out


ALL = [make_doc, read_docs]

"""What an LLM call cost: pluggable pricers that turn an :class:`LLMUsage` into USD.

A pricer answers ``cost(usage) -> PriceQuote | None``. ``None`` means "this model is not
priced here": the ledger stores NULL and shows "unpriced", never a guessed number. A quote
whose ``cost_usd`` is None says the same with a reason (``note``), e.g. the look-alike
model a name only shares a prefix with; the ledger stores the note beside the NULL.

Prices are those of the call's own day: ``usage.requested_at`` (the ledger fills it in
with the record's time for usage that lacks it).

* :class:`GenAIPricesPricer` (the default) asks the maintained ``genai-prices`` database.
* :class:`TablePricer` holds your own per-model prices (USD per million tokens), e.g. a
  negotiated contract or a self-hosted model.
* :class:`ChainPricer` asks several in order: the first that knows the model wins.
* :func:`pricer_from_env` builds what the ledger uses: ``BATON_PRICES_FILE`` (a JSON or
  YAML price table) in front of ``BATON_PRICER`` (``module:attr`` of a custom pricer) or,
  without it, of the genai-prices default.

All arithmetic is :class:`~decimal.Decimal`; a float never touches a price.

Example::

    from baton_temporal.pricing import ChainPricer, GenAIPricesPricer, TablePricer
    pricer = ChainPricer(
        TablePricer({"my-llama": {"input": "0.20", "output": "0.60"}}),
        GenAIPricesPricer(),
    )
    quote = pricer.cost(LLMUsage(model="gpt-4o", input_tokens=1000, output_tokens=100))
    quote.cost_usd, quote.price_model, quote.price_version
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import json
import logging
import os
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from ._files import MAX_PRICES_FILE_BYTES, load_yaml, read_small_file
from .usage import LLMUsage

__all__ = [
    "BATCH_DISCOUNTS",
    "MAX_CALL_COST_USD",
    "MAX_PRICE_PER_MTOK",
    "PREFIX_MATCH_ENV",
    "PRICER_ENV",
    "PRICES_FILE_ENV",
    "ChainPricer",
    "GenAIPricesPricer",
    "ModelPrice",
    "PriceQuote",
    "Pricer",
    "PricingError",
    "TablePricer",
    "pricer_from_env",
]

log = logging.getLogger(__name__)

PRICES_FILE_ENV = "BATON_PRICES_FILE"
PRICER_ENV = "BATON_PRICER"
PREFIX_MATCH_ENV = "BATON_PRICE_PREFIX_MATCH"

# Bounds on what a price or a quote can be. The dearest models cost ~$600 per million
# tokens; a price a hundred times that is a typo (a price per token entered per million,
# a misplaced point). A call is at most MAX_TOKENS (1e8) tokens, and the ledger's sums
# must stay exact: SQLite keeps costs as integer 1e-10 USD in 63 bits (~$9e8 in all).
MAX_PRICE_PER_MTOK = Decimal(100_000)
MAX_CALL_COST_USD = Decimal(100_000)

_MILLION = Decimal(1_000_000)


class PricingError(ValueError):
    """A price table or pricer setting is invalid (raised when it is loaded, not later)."""


class PriceQuote(BaseModel):
    """The cost of one call, and which price produced it (stored beside the cost)."""

    model_config = ConfigDict(frozen=True)

    # None: the pricer declines to price the call and says why in ``note``.
    cost_usd: Decimal | None
    # The id of the price entry that matched, e.g. "anthropic/claude-sonnet-4-0" (for an
    # unpriced quote: the candidate it was not priced as).
    price_model: str
    # Which price data: lets a later audit tell costs from old and new price lists apart.
    price_version: str
    note: str | None = None


@runtime_checkable
class Pricer(Protocol):
    """Anything with ``cost(usage) -> PriceQuote | None``.

    Example::

        class Flat:
            def cost(self, usage: LLMUsage) -> PriceQuote | None:
                if usage.model != "in-house":
                    return None
                return PriceQuote(cost_usd=Decimal("0.001"), price_model="in-house",
                                  price_version="flat-2025")
    """

    def cost(self, usage: LLMUsage) -> PriceQuote | None: ...


class GenAIPricesPricer:
    """Prices from the ``genai-prices`` package (the default pricer).

    Every dimension genai-prices prices and :class:`LLMUsage` carries goes in: cache
    reads, 5-minute and 1-hour cache writes, audio in and out, reasoning tokens, web
    search requests; ``service_tier`` / ``speed`` select the provider's price variant
    (OpenAI priority or flex, Anthropic fast mode, batch). The price is that of
    ``usage.requested_at`` (now, when unset). So the cost of a reply equals what
    genai-prices computes from the raw reply itself.

    Model names are strict by default: a model is priced only when genai-prices knows the
    name as a model id, an alias, or a dated form of one (``-20250514``, ``-2024-08-06``,
    ``@20250514``, ``-0613``, ``-latest``). A name that merely starts like a known model
    (``claude-sonnet-4-5-mystery``) gives an unpriced quote whose ``note`` names the
    candidate. Dates must be real and in the provider's own form (Anthropic ``-YYYYMMDD``,
    OpenAI ``-YYYY-MM-DD`` or ``-MMDD``): ``claude-sonnet-4-5-1234`` and
    ``gpt-4o-2024-99-99`` are unpriced, their candidate named. ``prefix_match=True``
    (or ``BATON_PRICE_PREFIX_MATCH=1``) accepts such matches, as genai-prices itself does.

    Example::

        GenAIPricesPricer().cost(LLMUsage(model="gpt-4o", provider="openai",
                                          input_tokens=1200, cache_read_tokens=1000,
                                          output_tokens=80))
    """

    def __init__(self, *, prefix_match: bool = False) -> None:
        self.prefix_match = prefix_match

    def cost(self, usage: LLMUsage) -> PriceQuote | None:
        # Imported here: the price data is large, and many processes never price anything.
        import genai_prices

        try:
            calc = genai_prices.calc_price(
                genai_usage(usage),
                usage.model,
                provider_id=_GENAI_PROVIDER.get(usage.provider or "", usage.provider),
                genai_request_timestamp=usage.requested_at or datetime.now(UTC),
                price_context=price_context(usage),
            )
        except LookupError:
            # Unknown model or provider: unpriced; a near name, if any, is shown.
            return _unknown_name_quote(usage)
        version = _version(genai_prices, calc.auto_update_timestamp)
        total = calc.total_price
        if usage.service_tier == "batch":
            total, table = _batch_price(usage, calc, genai_prices)
            if table:
                version += f" + baton batch table ({BATCH_DISCOUNTS[usage.provider or '']} x)"
        matched = f"{calc.provider.id}/{calc.model.id}"
        if not self.prefix_match and not _known_name(usage.model, calc.model, usage.provider):
            return PriceQuote(
                cost_usd=None,
                price_model=matched,
                price_version=version,
                note=(
                    f"prefix-only match: {usage.model!r} is not a name genai-prices knows; "
                    f"nearest is {matched} (set {PREFIX_MATCH_ENV}=1 to price such names)"
                ),
            )
        return PriceQuote(cost_usd=total, price_model=matched, price_version=version)

    def __repr__(self) -> str:
        return f"GenAIPricesPricer(prefix_match={self.prefix_match})"


# Batch API prices as a fraction of the standard ones, for models whose batch price
# genai-prices does not list (it lists OpenAI's and Anthropic's current models; older
# Anthropic models, e.g. claude-sonnet-4-20250514, have none). Both providers bill batch
# requests at 50% of the standard input, output and cache rates:
# https://docs.claude.com/en/docs/build-with-claude/batch-processing#pricing and
# https://platform.openai.com/docs/guides/batch. Web searches have no batch rate.
BATCH_DISCOUNTS: dict[str, Decimal] = {"anthropic": Decimal("0.5"), "openai": Decimal("0.5")}


def _batch_price(usage: LLMUsage, calc: Any, genai_prices: Any) -> tuple[Decimal, bool]:
    """The batch price of ``usage``: genai-prices' own batch variant when it has one
    (True: from the table here instead)."""
    context = {k: v for k, v in (price_context(usage) or {}).items() if k != "processing"}
    standard = genai_prices.calc_price(
        genai_usage(usage),
        usage.model,
        provider_id=_GENAI_PROVIDER.get(usage.provider or "", usage.provider),
        genai_request_timestamp=usage.requested_at or datetime.now(UTC),
        price_context=context or None,
    )
    discount = BATCH_DISCOUNTS.get(usage.provider or "")
    if calc.model_price != standard.model_price or discount is None:
        return calc.total_price, False  # genai-prices knows the batch price (or no table)
    per_k = standard.model_price.web_searches_kcount or Decimal(0)
    searches = per_k * usage.web_search_requests / 1000
    return (standard.total_price - searches) * discount + searches, True


# Our provider names -> genai-prices provider ids. A local OpenAI-compatible server is
# not OpenAI: its models are priced only if genai-prices finds them on its own.
_GENAI_PROVIDER: dict[str, str | None] = {"openai-compatible": None, "": None}

# The dated and alias forms the providers give their model ids. Anthropic:
# ``-20250514`` (and ``@20250514`` on Vertex); OpenAI: ``-2024-08-06`` and, for older
# models, ``-0613`` (month and day). Both: ``-latest``. A suffix counts only when its date
# is a real calendar date: ``-1234`` or ``-2024-99-99`` is a look-alike, not a snapshot.
_DATE_FORMS: dict[str, tuple[str, ...]] = {
    "anthropic": ("yyyymmdd",),
    "openai": ("yyyy-mm-dd", "mmdd"),
}
_DATE_SUFFIX = re.compile(
    r"^(?P<stem>.+?)[-@](?:(?P<yyyymmdd>\d{8})|(?P<ymd>\d{4}-\d{2}-\d{2})|(?P<mmdd>\d{4})|latest)$"
)


def _undated(ref: str, provider: str | None) -> str | None:
    """``ref`` without a real dated or ``-latest`` suffix of ``provider``'s forms (any
    provider's when unknown); None if it has no such suffix."""
    m = _DATE_SUFFIX.match(ref)
    if m is None:
        return None
    forms = _DATE_FORMS.get(provider or "", ("yyyymmdd", "yyyy-mm-dd", "mmdd"))
    if m["yyyymmdd"] is not None:
        ok = "yyyymmdd" in forms and _real_date(m["yyyymmdd"], "%Y%m%d")
    elif m["ymd"] is not None:
        ok = "yyyy-mm-dd" in forms and _real_date(m["ymd"], "%Y-%m-%d")
    elif m["mmdd"] is not None:
        # 2000 is a leap year, so 0229 is a real month and day.
        ok = "mmdd" in forms and _real_date("2000" + m["mmdd"], "%Y%m%d")
    else:
        ok = True  # -latest
    return m["stem"] if ok else None


def _real_date(text: str, fmt: str) -> bool:
    try:
        day = datetime.strptime(text, fmt)
    except ValueError:
        return False
    return 2000 <= day.year <= 2100


def _version(genai_prices: Any, fetched: datetime | None) -> str:
    version = f"genai-prices {genai_prices.__version__}"
    if fetched is not None:
        version += f" (prices fetched {fetched.isoformat()})"
    return version


def _unknown_name_quote(usage: LLMUsage) -> PriceQuote | None:
    """An unpriced quote naming the known model ``usage.model`` looks like (the longest
    known id or name that it starts with), or None if it looks like none."""
    import genai_prices

    wanted = _GENAI_PROVIDER.get(usage.provider or "", usage.provider)
    candidate = _look_alike_of(usage.model.lower().split("/")[-1][:256], wanted)
    if candidate is None:
        return None
    return PriceQuote(
        cost_usd=None,
        price_model=candidate,
        price_version=_version(genai_prices, None),
        note=(
            f"unknown model name: {usage.model!r} is not a name genai-prices knows; it looks "
            f"like {candidate} (a dated form must be a real date, e.g. -20250514 or "
            f"-2024-08-06); use the exact model id, or list the name in {PRICES_FILE_ENV}"
        ),
    )


def genai_usage(usage: LLMUsage) -> Any:
    """``usage`` as a ``genai_prices.Usage``: one key per billed dimension.

    Example::

        genai_usage(LLMUsage(model="m", input_tokens=9, cache_write_tokens=4,
                             cache_write_1h_tokens=4)).cache_write_1h_tokens   # 4
    """
    import genai_prices

    values = {
        "input_tokens": usage.input_tokens,
        "cache_read_tokens": usage.cache_read_tokens,
        "cache_write_tokens": usage.cache_write_tokens,
        "output_tokens": usage.output_tokens,
        "output_reasoning_tokens": usage.reasoning_tokens,
    }
    if usage.cache_write_1h_tokens:
        values["cache_write_1h_tokens"] = usage.cache_write_1h_tokens
        values["cache_write_5m_tokens"] = usage.cache_write_tokens - usage.cache_write_1h_tokens
    if usage.input_audio_tokens:
        values["input_audio_tokens"] = usage.input_audio_tokens
    if usage.output_audio_tokens:
        values["output_audio_tokens"] = usage.output_audio_tokens
    if usage.web_search_requests:
        values["web_searches"] = usage.web_search_requests
    return genai_prices.Usage(**values)


def price_context(usage: LLMUsage) -> dict[str, str] | None:
    """The genai-prices price context of a call: service tier, speed, batch processing."""
    context: dict[str, str] = {}
    tier = usage.service_tier
    if tier == "batch":
        context["processing"] = "batch"
    elif tier and usage.provider != "anthropic":
        # Anthropic's "standard"/"priority" have no price variants; OpenAI's do.
        context["service_tier"] = tier
    if usage.speed and usage.speed != "standard":
        context["speed"] = usage.speed
    return context or None


@functools.lru_cache(maxsize=512)
def _look_alike_of(ref: str, provider_id: str | None) -> str | None:
    """``provider/model`` of the known model whose id or spelled-out name is the longest
    start of ``ref`` (cached: a self-hosted model's name comes back on every call)."""
    from genai_prices import data_snapshot

    best: tuple[int, str] | None = None
    for provider in data_snapshot.get_snapshot().providers:
        if provider_id is not None and provider.id != provider_id:
            continue
        for model in provider.models:
            for name in {model.id.lower(), *_stems(model.match)}:
                if name and ref.startswith(name) and (best is None or len(name) > best[0]):
                    best = (len(name), f"{provider.id}/{model.id}")
    return None if best is None else best[1]


def _known_name(model_ref: str, model: Any, provider: str | None = None) -> bool:
    """Whether genai-prices knows ``model_ref`` as ``model`` by name, not by prefix only:
    its id, a name its match clause spells out, or a real dated / ``-latest`` form of one."""
    ref = model_ref.lower().split("/")[-1]
    names = {model.id.lower(), *_stems(model.match)}
    if ref in names or _undated(ref, provider) in names:
        return True
    return _regex_match(model.match, ref)


def _stems(clause: Any) -> set[str]:
    """The names a match clause spells out: equals values and starts_with stems."""
    out: set[str] = set()
    for attr in ("equals", "starts_with"):
        value = getattr(clause, attr, None)
        if isinstance(value, str):
            out.add(value.lower().rstrip("-@"))
    for attr in ("or_", "and_"):
        for sub in getattr(clause, attr, None) or ():
            out |= _stems(sub)
    return out


def _regex_match(clause: Any, ref: str) -> bool:
    regex = getattr(clause, "regex", None)
    if isinstance(regex, str):
        return re.fullmatch(regex, ref) is not None
    return any(_regex_match(sub, ref) for sub in getattr(clause, "or_", None) or ())


class ModelPrice(BaseModel):
    """USD per million tokens of one model (``web_search``: USD per 1,000 requests).

    ``cache_read`` / ``cache_write`` / ``input_audio`` default to the ``input`` rate (they
    are parts of ``input_tokens``), ``cache_write_1h`` to ``cache_write``,
    ``output_audio`` to ``output``; reasoning tokens are billed as output; web searches
    are free unless priced.
    """

    model_config = ConfigDict(frozen=True)

    input: Decimal
    output: Decimal
    cache_read: Decimal | None = None
    cache_write: Decimal | None = None
    cache_write_1h: Decimal | None = None
    input_audio: Decimal | None = None
    output_audio: Decimal | None = None
    web_search: Decimal | None = None

    def cost(self, usage: LLMUsage) -> Decimal:
        """The cost of ``usage`` at these prices, exact."""
        cache_read = self.input if self.cache_read is None else self.cache_read
        cache_write = self.input if self.cache_write is None else self.cache_write
        write_1h = cache_write if self.cache_write_1h is None else self.cache_write_1h
        audio_in = self.input if self.input_audio is None else self.input_audio
        audio_out = self.output if self.output_audio is None else self.output_audio
        write_5m = usage.cache_write_tokens - usage.cache_write_1h_tokens
        text_in = max(usage.uncached_input_tokens - usage.input_audio_tokens, 0)
        total = (
            text_in * self.input
            + usage.input_audio_tokens * audio_in
            + usage.cache_read_tokens * cache_read
            + write_5m * cache_write
            + usage.cache_write_1h_tokens * write_1h
            + (usage.output_tokens - usage.output_audio_tokens) * self.output
            + usage.output_audio_tokens * audio_out
        )
        searches = usage.web_search_requests * (self.web_search or 0) * 1000
        return (total + searches) / _MILLION


_KINDS = (
    "input",
    "output",
    "cache_read",
    "cache_write",
    "cache_write_1h",
    "input_audio",
    "output_audio",
    "web_search",
)
_REQUIRED_KINDS = ("input", "output")


def _price_number(value: Any, where: str) -> Decimal:
    """One price as an exact Decimal, or a PricingError naming where it is."""
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise PricingError(f"{where}: expected a number of USD per million tokens, got {value!r}")
    try:
        # repr() of a float is its shortest exact decimal form: 0.1 -> "0.1", not 0.1000...5
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except InvalidOperation:
        raise PricingError(f"{where}: {value!r} is not a number") from None
    if not number.is_finite():
        raise PricingError(f"{where}: {value!r} is not a finite number")
    if number < 0:
        raise PricingError(f"{where}: {value!r} is negative; prices must be >= 0")
    if number > MAX_PRICE_PER_MTOK:
        raise PricingError(
            f"{where}: {value!r} is beyond {MAX_PRICE_PER_MTOK} USD per million tokens; "
            "prices are USD per MILLION tokens (e.g. 3 for $3/Mtok), not per token"
        )
    return number


def _model_price(model: str, spec: Any, source: str) -> ModelPrice:
    if isinstance(spec, ModelPrice):
        return spec
    where = f"{source}: model {model!r}"
    if not isinstance(spec, Mapping):
        raise PricingError(
            f"{where}: expected a mapping like {{'input': 3, 'output': 15}} "
            f"(USD per million tokens), got {spec!r}"
        )
    unknown = sorted(set(spec) - set(_KINDS))
    if unknown:
        raise PricingError(f"{where}: unknown price kind(s) {unknown}; allowed: {list(_KINDS)}")
    missing = [k for k in _REQUIRED_KINDS if spec.get(k) is None]
    if missing:
        raise PricingError(f"{where}: missing {missing}; 'input' and 'output' are required")
    return ModelPrice(
        **{k: _price_number(spec[k], f"{where}: {k}") for k in _KINDS if spec.get(k) is not None}
    )


class TablePricer:
    """Your own prices, per model, in USD per million tokens.

    Every number is checked when the table is built (a negative, NaN or misspelt kind
    raises :class:`PricingError` at once, not at the first call). Models are matched by
    exact name, then case-insensitively, then as a real dated or ``-latest`` form of a
    listed name (``gpt-4o-2024-08-06`` or ``gpt-4o-latest`` for ``gpt-4o``: the name a
    provider replies with); an unlisted model gives ``None``.
    ``price_version`` is ``version`` if given, else ``table:`` plus a hash of the prices,
    so that a changed table is told apart in the ledger.

    Example::

        TablePricer({"gpt-4o": {"input": "2.50", "output": "10", "cache_read": "1.25"}},
                    version="contract-2025-06")
    """

    def __init__(
        self,
        prices: Mapping[str, ModelPrice | Mapping[str, Any]],
        *,
        version: str | None = None,
        source: str = "price table",
    ) -> None:
        if not isinstance(prices, Mapping):
            raise PricingError(f"{source}: expected a mapping of model name to prices")
        table: dict[str, ModelPrice] = {}
        for model, spec in prices.items():
            if not isinstance(model, str) or not model:
                raise PricingError(f"{source}: model names must be non-empty strings: {model!r}")
            table[model] = _model_price(model, spec, source)
        self._prices = table
        self._folded = {name.casefold(): name for name in table}
        self.version = version or f"table:{self._digest()}"

    def _digest(self) -> str:
        # Normalised numbers: "1.0" and 1 are the same price, and give the same version.
        canonical = json.dumps(
            {
                model: {k: str(v.normalize()) for k, v in price if v is not None}
                for model, price in sorted(self._prices.items())
            },
            sort_keys=True,
        )
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]

    @property
    def models(self) -> Mapping[str, ModelPrice]:
        """The validated table."""
        return dict(self._prices)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> TablePricer:
        """Load a JSON or YAML price table.

        Either ``{"version": "...", "models": {name: prices}}`` or a bare
        ``{name: prices}``; prices are ``{"input": .., "output": .., "cache_read": ..,
        "cache_write": ..}`` in USD per million tokens. Example (YAML)::

            version: contract-2025-06
            models:
              gpt-4o: {input: 2.50, output: 10, cache_read: 1.25}
        """
        file = Path(path)
        try:
            # Bounded, and only a regular file: BATON_PRICES_FILE=/dev/zero must not read
            # until memory runs out.
            text = read_small_file(file, limit=MAX_PRICES_FILE_BYTES, what="price table")
        except (OSError, UnicodeDecodeError) as err:
            raise PricingError(f"cannot read price table {file}: {err}") from None
        try:
            if file.suffix.lower() == ".json":
                # parse_float=Decimal: "0.15" stays exactly 0.15
                data = json.loads(text, parse_float=Decimal)
            else:
                data = load_yaml(text)  # aliases bounded: a few bytes cannot grow to GBs
        except RecursionError:
            raise PricingError(f"price table {file} is nested too deeply to read") from None
        except Exception as err:
            raise PricingError(f"price table {file} is not valid JSON/YAML: {err}") from None
        if not isinstance(data, Mapping):
            raise PricingError(f"price table {file}: expected a mapping at the top level")
        version = None
        if isinstance(data.get("models"), Mapping):
            version = data.get("version")
            if version is not None and not isinstance(version, str | int | float):
                raise PricingError(f"price table {file}: 'version' must be a string")
            extra = sorted(set(data) - {"models", "version"})
            if extra:
                raise PricingError(
                    f"price table {file}: unknown top-level key(s) {extra}; "
                    "expected 'models' and optionally 'version'"
                )
            data = data["models"]
        return cls(data, version=None if version is None else str(version), source=str(file))

    def cost(self, usage: LLMUsage) -> PriceQuote | None:
        name = self._listed(usage.model)
        if name is None:
            # Providers reply with the dated snapshot of the name asked for (gpt-4o ->
            # gpt-4o-2024-08-06), and the ledger stores what they reply: a table that
            # lists gpt-4o prices its real dated forms too (never a mere prefix).
            stem = _undated(usage.model.casefold(), usage.provider)
            name = None if stem is None else self._listed(stem)
        if name is None:
            return None
        return PriceQuote(
            cost_usd=self._prices[name].cost(usage), price_model=name, price_version=self.version
        )

    def _listed(self, model: str) -> str | None:
        """The table's name for ``model``: exact, else case-insensitive; None if unlisted."""
        return model if model in self._prices else self._folded.get(model.casefold())

    def __repr__(self) -> str:
        return f"TablePricer({len(self._prices)} models, version={self.version!r})"


class ChainPricer:
    """Ask pricers in order; the first quote wins; ``None`` if none knows the model.

    Example::

        ChainPricer(TablePricer.from_file("prices.yaml"), GenAIPricesPricer())
    """

    def __init__(self, *pricers: Pricer) -> None:
        if not pricers:
            raise PricingError("ChainPricer needs at least one pricer")
        for p in pricers:
            if not isinstance(p, Pricer):
                raise PricingError(f"{p!r} is not a pricer: it has no cost(usage) method")
        self.pricers: tuple[Pricer, ...] = pricers

    def cost(self, usage: LLMUsage) -> PriceQuote | None:
        declined: PriceQuote | None = None
        for pricer in self.pricers:
            quote = pricer.cost(usage)
            if quote is not None and quote.cost_usd is not None:
                return quote
            declined = declined or quote
        # No price; the first pricer's reason for declining, if any, is kept.
        return declined

    def __repr__(self) -> str:
        return f"ChainPricer({', '.join(map(repr, self.pricers))})"


def _load_custom_pricer(spec: str) -> Pricer:
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise PricingError(f"{PRICER_ENV}={spec!r}: expected 'package.module:attribute'")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as err:
        raise PricingError(f"{PRICER_ENV}={spec!r}: cannot import it: {err}") from None
    # A class or a factory function is called with no arguments; an instance is used as is.
    if not isinstance(obj, Pricer) or isinstance(obj, type):
        if not callable(obj):
            raise PricingError(f"{PRICER_ENV}={spec!r} is neither a pricer nor a factory of one")
        obj = obj()
    if not isinstance(obj, Pricer):
        raise PricingError(f"{PRICER_ENV}={spec!r} gave {obj!r}, which has no cost(usage) method")
    return obj


def pricer_from_env(environ: Mapping[str, str] | None = None) -> Pricer:
    """The pricer configured by the environment.

    * ``BATON_PRICER=package.module:attr`` replaces the genai-prices default (``attr`` is
      a pricer instance, or a class / factory called with no arguments).
    * ``BATON_PRICES_FILE=prices.yaml`` (or ``.json``) is asked first, per model; models
      it does not list fall through to the pricer above.
    * ``BATON_PRICE_PREFIX_MATCH=1`` lets genai-prices price a name that only starts like
      a model it knows (off by default: such calls are stored unpriced, candidate shown).

    Example::

        BATON_PRICES_FILE=prices.yaml baton worker ...   # contract prices, else genai-prices
    """
    env = os.environ if environ is None else environ
    custom = env.get(PRICER_ENV, "").strip()
    prefix = env.get(PREFIX_MATCH_ENV, "").strip().lower()
    if prefix not in ("", "0", "1", "false", "true", "no", "yes"):
        raise PricingError(f"{PREFIX_MATCH_ENV}={prefix!r}: expected 1 or 0")
    base: Pricer = (
        _load_custom_pricer(custom)
        if custom
        else GenAIPricesPricer(prefix_match=prefix in ("1", "true", "yes"))
    )
    prices_file = env.get(PRICES_FILE_ENV, "").strip()
    if prices_file:
        return ChainPricer(TablePricer.from_file(prices_file), base)
    return base

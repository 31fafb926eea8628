"""What an LLM call cost: pluggable pricers that turn an :class:`LLMUsage` into USD.

A pricer answers ``cost(usage) -> PriceQuote | None``. ``None`` means "this model is not
priced here": the ledger stores NULL and shows "unpriced", never a guessed number.

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

import hashlib
import importlib
import json
import logging
import os
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from ._files import MAX_PRICES_FILE_BYTES, load_yaml, read_small_file
from .usage import LLMUsage

__all__ = [
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

_MILLION = Decimal(1_000_000)


class PricingError(ValueError):
    """A price table or pricer setting is invalid (raised when it is loaded, not later)."""


class PriceQuote(BaseModel):
    """The cost of one call, and which price produced it (stored beside the cost)."""

    model_config = ConfigDict(frozen=True)

    cost_usd: Decimal
    # The id of the price entry that matched, e.g. "anthropic/claude-sonnet-4-0".
    price_model: str
    # Which price data: lets a later audit tell costs from old and new price lists apart.
    price_version: str


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

    ``LLMUsage`` maps onto ``genai_prices.Usage`` one to one: both count ``input_tokens``
    as the whole prompt with cache reads/writes included (genai-prices bills the cache
    parts at their own rates and the rest at the input rate), and reasoning tokens as a
    part of ``output_tokens`` (``output_reasoning_tokens``). The provider hint is
    ``usage.provider``; a model or provider genai-prices does not know gives ``None``.

    Example::

        GenAIPricesPricer().cost(LLMUsage(model="gpt-4o", provider="openai",
                                          input_tokens=1200, cache_read_tokens=1000,
                                          output_tokens=80))
    """

    def cost(self, usage: LLMUsage) -> PriceQuote | None:
        # Imported here: the price data is large, and many processes never price anything.
        import genai_prices

        gp_usage = genai_prices.Usage(
            input_tokens=usage.input_tokens,
            cache_read_tokens=usage.cache_read_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            output_tokens=usage.output_tokens,
            output_reasoning_tokens=usage.reasoning_tokens,
        )
        try:
            calc = genai_prices.calc_price(gp_usage, usage.model, provider_id=usage.provider)
        except LookupError:
            # Unknown model or provider: unpriced, never the price of a look-alike.
            return None
        version = f"genai-prices {genai_prices.__version__}"
        if calc.auto_update_timestamp is not None:
            version += f" (prices fetched {calc.auto_update_timestamp.isoformat()})"
        return PriceQuote(
            cost_usd=calc.total_price,
            price_model=f"{calc.provider.id}/{calc.model.id}",
            price_version=version,
        )

    def __repr__(self) -> str:
        return "GenAIPricesPricer()"


class ModelPrice(BaseModel):
    """USD per million tokens of one model.

    ``cache_read`` / ``cache_write`` default to the ``input`` rate (cached tokens are a
    part of ``input_tokens``); reasoning tokens are billed as output.
    """

    model_config = ConfigDict(frozen=True)

    input: Decimal
    output: Decimal
    cache_read: Decimal | None = None
    cache_write: Decimal | None = None

    def cost(self, usage: LLMUsage) -> Decimal:
        """The cost of ``usage`` at these prices, exact."""
        cache_read = self.input if self.cache_read is None else self.cache_read
        cache_write = self.input if self.cache_write is None else self.cache_write
        total = (
            usage.uncached_input_tokens * self.input
            + usage.cache_read_tokens * cache_read
            + usage.cache_write_tokens * cache_write
            + usage.output_tokens * self.output
        )
        return total / _MILLION


_KINDS = ("input", "output", "cache_read", "cache_write")
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
    exact name, then case-insensitively; an unlisted model gives ``None``.
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
        name = (
            usage.model if usage.model in self._prices else self._folded.get(usage.model.casefold())
        )
        if name is None:
            return None
        return PriceQuote(
            cost_usd=self._prices[name].cost(usage), price_model=name, price_version=self.version
        )

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
        for pricer in self.pricers:
            quote = pricer.cost(usage)
            if quote is not None:
                return quote
        return None

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

    Example::

        BATON_PRICES_FILE=prices.yaml baton worker ...   # contract prices, else genai-prices
    """
    env = os.environ if environ is None else environ
    custom = env.get(PRICER_ENV, "").strip()
    base: Pricer = _load_custom_pricer(custom) if custom else GenAIPricesPricer()
    prices_file = env.get(PRICES_FILE_ENV, "").strip()
    if prices_file:
        return ChainPricer(TablePricer.from_file(prices_file), base)
    return base

"""Pricers: genai-prices mapping, price tables, chains, configuration from the environment."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import genai_prices
import pytest

from baton_temporal.pricing import (
    ChainPricer,
    GenAIPricesPricer,
    PriceQuote,
    Pricer,
    PricingError,
    TablePricer,
    pricer_from_env,
)
from baton_temporal.usage import LLMUsage


def test_genai_prices_counts_cache_inside_input_tokens() -> None:
    # genai-prices' input_tokens includes cache reads/writes, like LLMUsage's: the
    # uncached rest is billed at the input rate, the cached parts at theirs.
    pricer = GenAIPricesPricer()
    model = "claude-sonnet-4-20250514"
    usage = LLMUsage(
        model=model,
        provider="anthropic",
        input_tokens=10_000,
        cache_read_tokens=6_000,
        cache_write_tokens=3_000,
        output_tokens=500,
    )
    quote = pricer.cost(usage)
    assert quote is not None
    calc = genai_prices.calc_price(
        genai_prices.Usage(
            input_tokens=10_000,
            cache_read_tokens=6_000,
            cache_write_tokens=3_000,
            output_tokens=500,
        ),
        model,
        provider_id="anthropic",
    )
    assert quote.cost_usd == calc.total_price
    # The same by hand from the model's own rates (USD per million tokens).
    p = calc.model_price
    by_hand = (
        1_000 * p.input_mtok
        + 6_000 * p.cache_read_mtok
        + 3_000 * p.cache_write_mtok
        + 500 * p.output_mtok
    ) / 1_000_000
    assert quote.cost_usd == by_hand
    # Cache reads are cheaper than plain input: never billed twice.
    plain = pricer.cost(usage.model_copy(update={"cache_read_tokens": 0, "cache_write_tokens": 0}))
    assert plain is not None and quote.cost_usd != plain.cost_usd
    assert quote.price_model == "anthropic/claude-sonnet-4-0"
    assert quote.price_version == f"genai-prices {genai_prices.__version__}"


def test_genai_prices_reasoning_is_part_of_output() -> None:
    pricer = GenAIPricesPricer()
    base = LLMUsage(model="o3", provider="openai", input_tokens=100, output_tokens=1_000)
    with_reasoning = base.model_copy(update={"reasoning_tokens": 800})
    a, b = pricer.cost(base), pricer.cost(with_reasoning)
    assert a is not None and b is not None
    # o3 has no separate reasoning price: reasoning tokens are output tokens, not extra.
    assert a.cost_usd == b.cost_usd


def test_genai_prices_unknown_model_or_provider_is_unpriced() -> None:
    pricer = GenAIPricesPricer()
    assert pricer.cost(LLMUsage(model="our-fine-tune-v7", input_tokens=10)) is None
    assert pricer.cost(LLMUsage(model="gpt-4o", provider="no-such-cloud", input_tokens=1)) is None
    assert pricer.cost(LLMUsage(model="gpt-4o", input_tokens=1)) is not None


def test_table_pricer_prices_real_dated_forms_of_a_listed_name_only() -> None:
    table = TablePricer(
        {
            "gpt-4o": {"input": "1", "output": "1"},
            "gpt-4o-2024-05-13": {"input": "7", "output": "7"},
        }
    )

    def priced_as(model: str, provider: str | None = "openai") -> str | None:
        quote = table.cost(LLMUsage(model=model, provider=provider, input_tokens=10))
        return None if quote is None else quote.price_model

    assert priced_as("gpt-4o-2024-08-06") == "gpt-4o"  # what OpenAI replies for gpt-4o
    assert priced_as("GPT-4o-2024-08-06") == "gpt-4o"
    assert priced_as("gpt-4o-2024-05-13") == "gpt-4o-2024-05-13"  # listed itself: its own
    # Look-alikes are not dated forms: a prefix, an unreal date, another provider's form.
    assert priced_as("gpt-4o-mystery") is None
    assert priced_as("gpt-4o-2024-99-99") is None
    assert priced_as("gpt-4o-20240806") is None


def test_table_pricer_math_is_exact() -> None:
    pricer = TablePricer(
        {"m": {"input": "3", "output": 15, "cache_read": 0.3, "cache_write": "3.75"}},
        version="contract-1",
    )
    usage = LLMUsage(
        model="m",
        input_tokens=10_000,
        cache_read_tokens=6_000,
        cache_write_tokens=3_000,
        output_tokens=500,
        reasoning_tokens=100,
    )
    quote = pricer.cost(usage)
    assert quote == PriceQuote(
        cost_usd=Decimal("0.003") + Decimal("0.0018") + Decimal("0.01125") + Decimal("0.0075"),
        price_model="m",
        price_version="contract-1",
    )
    # No cache prices: cached tokens cost the input rate.
    plain = TablePricer({"m": {"input": 2, "output": 4}})
    q = plain.cost(usage)
    assert q is not None and q.cost_usd == (Decimal(10_000 * 2) + Decimal(500 * 4)) / 1_000_000
    assert q.price_version.startswith("table:")
    # Case-insensitive fallback; unknown models are unpriced.
    assert plain.cost(LLMUsage(model="M", input_tokens=1)) is not None
    assert plain.cost(LLMUsage(model="other", input_tokens=1)) is None


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"input": -1, "output": 1}, "negative"),
        ({"input": float("nan"), "output": 1}, "not a finite number"),
        ({"input": "NaN", "output": 1}, "not a finite number"),
        ({"input": "inf", "output": 1}, "not a finite number"),
        ({"input": "cheap", "output": 1}, "not a number"),
        ({"input": True, "output": 1}, "expected a number"),
        ({"input": 1}, "missing"),
        ({"input": 1, "output": 1, "cache_reads": 1}, "unknown price kind"),
        ("3/15", "expected a mapping"),
    ],
)
def test_table_pricer_rejects_bad_numbers_early(spec: object, message: str) -> None:
    with pytest.raises(PricingError, match=message) as info:
        TablePricer({"gpt-x": spec})  # type: ignore[dict-item]
    assert "gpt-x" in str(info.value)


def test_table_version_tracks_content() -> None:
    a = TablePricer({"m": {"input": 1, "output": 2}})
    b = TablePricer({"m": {"input": "1.0", "output": 2}})
    c = TablePricer({"m": {"input": 1, "output": 3}})
    assert a.version == b.version != c.version


def test_chain_pricer_first_answer_wins() -> None:
    override = TablePricer({"gpt-4o": {"input": 1, "output": 1}}, version="ours")
    chain = ChainPricer(override, GenAIPricesPricer())
    q = chain.cost(LLMUsage(model="gpt-4o", input_tokens=1_000_000))
    assert q is not None and (q.cost_usd, q.price_version) == (Decimal(1), "ours")
    q = chain.cost(LLMUsage(model="gpt-4o-mini", input_tokens=1_000_000))
    assert q is not None and q.price_version.startswith("genai-prices")
    assert chain.cost(LLMUsage(model="unknown-model", input_tokens=1)) is None
    with pytest.raises(PricingError):
        ChainPricer()
    with pytest.raises(PricingError):
        ChainPricer(object())  # type: ignore[arg-type]


def test_prices_file_json_and_yaml(tmp_path: Path) -> None:
    j = tmp_path / "prices.json"
    j.write_text(json.dumps({"version": "v7", "models": {"m": {"input": 0.1, "output": 0.3}}}))
    y = tmp_path / "prices.yaml"
    y.write_text("m:\n  input: 0.1\n  output: 0.3\n  cache_read: 0.01\n")
    usage = LLMUsage(model="m", input_tokens=3, output_tokens=7)
    from_json = TablePricer.from_file(j)
    from_yaml = TablePricer.from_file(y)
    assert from_json.version == "v7"
    assert from_json.models["m"].input == Decimal("0.1")  # not 0.1000000000000000055...
    qj, qy = from_json.cost(usage), from_yaml.cost(usage)
    assert qj is not None and qy is not None
    assert qj.cost_usd == qy.cost_usd == Decimal("0.0000024")

    bad = tmp_path / "bad.yaml"
    bad.write_text("m: {input: -0.1, output: 1}\n")
    with pytest.raises(PricingError, match=r"bad\.yaml.*'m'.*negative"):
        TablePricer.from_file(bad)
    with pytest.raises(PricingError, match="cannot read"):
        TablePricer.from_file(tmp_path / "missing.yaml")


class FlatPricer:
    """Used through BATON_PRICER below."""

    def cost(self, usage: LLMUsage) -> PriceQuote | None:
        return PriceQuote(cost_usd=Decimal("0.5"), price_model="flat", price_version="flat-1")


flat_instance = FlatPricer()


def test_pricer_from_env(tmp_path: Path) -> None:
    usage_known = LLMUsage(model="gpt-4o", input_tokens=1)
    default = pricer_from_env({})
    assert isinstance(default, GenAIPricesPricer)

    for target in ("FlatPricer", "flat_instance"):
        custom = pricer_from_env({"BATON_PRICER": f"{__name__}:{target}"})
        assert isinstance(custom, Pricer)
        q = custom.cost(usage_known)
        assert q is not None and q.price_model == "flat"

    prices = tmp_path / "p.json"
    prices.write_text('{"mine": {"input": 1, "output": 1}}')
    chained = pricer_from_env(
        {"BATON_PRICES_FILE": str(prices), "BATON_PRICER": f"{__name__}:FlatPricer"}
    )
    q_mine = chained.cost(LLMUsage(model="mine", input_tokens=1_000_000))
    q_other = chained.cost(usage_known)
    assert q_mine is not None and q_mine.cost_usd == 1
    assert q_other is not None and q_other.price_model == "flat"

    for bad in ("no_colon", "no.such.module:x", f"{__name__}:missing", f"{__name__}:Decimal"):
        with pytest.raises(PricingError, match="BATON_PRICER"):
            pricer_from_env({"BATON_PRICER": bad})


def test_prefix_match_setting() -> None:
    odd = LLMUsage(model="claude-sonnet-4-5-mystery", provider="anthropic", input_tokens=10)
    strict = pricer_from_env({})
    quote = strict.cost(odd)
    assert quote is not None and quote.cost_usd is None
    assert quote.price_model == "anthropic/claude-sonnet-4-5" and "prefix-only" in (
        quote.note or ""
    )
    loose = pricer_from_env({"BATON_PRICE_PREFIX_MATCH": "1"})
    priced = loose.cost(odd)
    assert priced is not None and priced.cost_usd is not None and priced.cost_usd > 0
    with pytest.raises(PricingError, match="BATON_PRICE_PREFIX_MATCH='maybe': expected 1 or 0"):
        pricer_from_env({"BATON_PRICE_PREFIX_MATCH": "maybe"})


# (provider, model name, priced?, candidate shown when unpriced). Only a provider's own
# dated forms with a real date, and known ids and aliases, are priced.
NAME_TABLE = [
    ("anthropic", "claude-sonnet-4-5", True, None),
    ("anthropic", "claude-sonnet-4-5-20250929", True, None),
    ("anthropic", "claude-sonnet-4-5@20250929", True, None),
    ("anthropic", "claude-3-5-sonnet-latest", True, None),
    ("anthropic", "claude-sonnet-4-20250514", True, None),
    ("anthropic", "claude-sonnet-4-5-1234", False, "anthropic/claude-sonnet-4-5"),
    ("anthropic", "claude-sonnet-4-5-20259999", False, "anthropic/claude-sonnet-4-5"),
    ("anthropic", "claude-sonnet-4-5-2025-09-29", False, "anthropic/claude-sonnet-4-5"),
    ("anthropic", "claude-sonnet-4-5-mystery", False, "anthropic/claude-sonnet-4-5"),
    ("openai", "gpt-4o", True, None),
    ("openai", "gpt-4o-2024-08-06", True, None),
    ("openai", "gpt-4-0613", True, None),
    ("openai", "o3-mini-2025-01-31", True, None),
    ("openai", "chatgpt-4o-latest", True, None),
    ("openai", "gpt-4o-mystery", False, "openai/gpt-4o"),
    ("openai", "gpt-4o-2024-99-99", False, "openai/gpt-4o"),
    ("openai", "gpt-4o-20240806", False, "openai/gpt-4o"),
    ("openai", "gpt-4-1234", False, "openai/gpt-4"),
    ("openai", "totally-unknown-model", False, None),
]


@pytest.mark.parametrize(("provider", "name", "priced", "candidate"), NAME_TABLE)
def test_only_real_names_and_dated_forms_are_priced(
    provider: str, name: str, priced: bool, candidate: str | None
) -> None:
    quote = GenAIPricesPricer().cost(
        LLMUsage(model=name, provider=provider, input_tokens=1000, output_tokens=10)
    )
    if priced:
        assert quote is not None and quote.cost_usd is not None and quote.cost_usd > 0
        assert quote.note is None
        return
    if candidate is None:
        assert quote is None  # nothing it looks like: plain unpriced
        return
    assert quote is not None and quote.cost_usd is None
    assert quote.price_model == candidate
    assert name in (quote.note or "") and candidate in (quote.note or "")
    # The note names a way out: the exact id, a price table, or prefix matching.
    assert "BATON_PRICE" in (quote.note or "")

"""The GenAI client metrics, with the conventions' bucket boundaries.

`gen_ai.client.operation.duration` (s), `gen_ai.client.token.usage` ({token}, one
record per token type) and, for streams, `gen_ai.client.operation.time_to_first_chunk`
(s), as semantic-conventions-genai v0.1.0 names them. Recorded only while a meter
provider is set; the instruments are made once per provider.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opentelemetry import metrics

from wandb_inference._version import __version__

from ._providers import meter_provider_set

if TYPE_CHECKING:
    from opentelemetry.metrics import Histogram, MeterProvider

__all__ = ["DURATION_BUCKETS", "TOKEN_BUCKETS", "Instruments", "instruments"]

# 0.01 s doubling to 81.92 s: for the duration and the time to first chunk.
DURATION_BUCKETS = [0.01 * 2**i for i in range(14)]
# 1, 4, 16 ... 67108864 tokens.
TOKEN_BUCKETS = [4**i for i in range(14)]


class Instruments:
    """The three histograms of one meter provider."""

    __slots__ = ("duration", "time_to_first_chunk", "tokens")

    def __init__(self, provider: MeterProvider) -> None:
        meter = provider.get_meter("wandb_inference", __version__)
        self.duration: Histogram = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=[round(b, 2) for b in DURATION_BUCKETS],
        )
        self.tokens: Histogram = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
        )
        self.time_to_first_chunk: Histogram = meter.create_histogram(
            "gen_ai.client.operation.time_to_first_chunk",
            unit="s",
            description="Time to receive the first chunk, measured from when the client issues the "
            "generation request to when the first chunk is received in the response stream.",
            explicit_bucket_boundaries_advisory=[round(b, 2) for b in DURATION_BUCKETS],
        )


_cache: list[Any] = [None, None]  # [provider, Instruments]


def instruments() -> Instruments | None:
    """The instruments of the global meter provider, or None when none is set."""
    if not meter_provider_set():
        return None
    provider = metrics.get_meter_provider()
    if _cache[0] is not provider:
        _cache[1] = Instruments(provider)
        _cache[0] = provider
    result: Instruments = _cache[1]
    return result

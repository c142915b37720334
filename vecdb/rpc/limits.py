"""Explicit request limits of the server: what a single call may ask for.

Every limit answers RESOURCE_EXHAUSTED (``vecdb.errors.ResourceExhausted``) with a message naming
the limit and how to raise it, so a client knows to split its request rather than retry it.
Values the engine itself rejects (k above its maximum, say) are left to the engine, so they get
the same INVALID_ARGUMENT as in embedded mode: each check takes the engine's ``ceiling``.
"""

from __future__ import annotations

from dataclasses import dataclass

from vecdb.errors import ResourceExhausted

MIB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """Per-call limits.

    max_message_bytes: largest request message gRPC accepts (bigger ones are refused before decoding).
    max_batch_rows: rows in one upsert message (a stream may carry many messages).
    max_queries: queries in one search call.
    max_k: neighbours per query.
    max_concurrent_rpcs: calls in flight; the next one is refused instead of queued.
    """

    max_message_bytes: int = 64 * MIB
    max_batch_rows: int = 100_000
    max_queries: int = 10_000
    max_k: int = 10_000
    max_concurrent_rpcs: int = 64

    def __post_init__(self) -> None:
        for name in ("max_message_bytes", "max_batch_rows", "max_queries", "max_k", "max_concurrent_rpcs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    def check_rows(self, rows: int, ceiling: int | None = None) -> None:
        """Refuse an upsert message with more than ``max_batch_rows`` rows (up to ``ceiling``)."""
        if self.max_batch_rows < rows and (ceiling is None or rows <= ceiling):
            raise ResourceExhausted(
                f"batch of {rows} rows is over the server limit of {self.max_batch_rows} "
                "(split it, stream it, or raise --max-batch-rows)"
            )

    def check_search(self, num_queries: int, k: int, k_ceiling: int | None = None) -> None:
        """Refuse a search with too many queries or too large a k (up to ``k_ceiling``)."""
        if num_queries > self.max_queries:
            raise ResourceExhausted(
                f"{num_queries} queries in one call is over the server limit of {self.max_queries} "
                "(split the batch or raise --max-queries)"
            )
        if self.max_k < k and (k_ceiling is None or k <= k_ceiling):
            raise ResourceExhausted(f"k={k} is over the server limit of {self.max_k} (raise --max-k)")

    def to_dict(self) -> dict[str, int]:
        """The limits as plain data (reported by ServerInfo)."""
        return {
            "max_message_bytes": self.max_message_bytes,
            "max_batch_rows": self.max_batch_rows,
            "max_queries": self.max_queries,
            "max_k": self.max_k,
            "max_concurrent_rpcs": self.max_concurrent_rpcs,
        }

"""Request-scoped dependencies, as Annotated aliases."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from gapwatch.adapters.alert_store import AlertStore
from gapwatch.adapters.dead_letter_reader import DeadLetterSource
from gapwatch.alerting.gap_book import GapBook
from gapwatch.api.count_cache import ResponseCache, Versions, WindowSums
from gapwatch.core.ports import CountReader, DayReader
from gapwatch.core.refdata import ReferenceData
from gapwatch.core.spc import SpcOptions
from gapwatch.settings import Settings

__all__ = ["Context", "ContextDep"]


@dataclass(frozen=True)
class Context:
    settings: Settings
    store: CountReader
    ref: ReferenceData
    clock_ms: Callable[[], int]
    broker_check: Callable[[], bool]
    versions: Versions
    sums: WindowSums
    responses: ResponseCache
    gap_book: GapBook
    spc_options: SpcOptions
    days: DayReader | None = None
    """Day buckets for gap series (None: the series endpoint answers 503)."""
    alerts: AlertStore | None = None
    """Alert state and changes (None: the alert endpoints answer 503)."""
    dead_letters: DeadLetterSource | None = None
    """The dead-letter topic's tail (None: GET /v1/dead-letters answers 503)."""


async def _context(request: Request) -> Context:
    ctx: Context = request.app.state.ctx
    return ctx


ContextDep = Annotated[Context, Depends(_context)]

"""Request-scoped dependencies, as Annotated aliases."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from gapwatch.api.count_cache import ResponseCache, Versions, WindowSums
from gapwatch.core.ports import CountReader
from gapwatch.core.refdata import ReferenceData
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


async def _context(request: Request) -> Context:
    ctx: Context = request.app.state.ctx
    return ctx


ContextDep = Annotated[Context, Depends(_context)]

"""CSV export of an ICB's indicator view: each group, the ICB total, England, the gap.

The numbers are the indicator endpoint's own answer (``answers.answer`` under the JSON
endpoint's path and query string, so the two share one cached answer and can never
disagree). ``csv_rows`` is the single place rows are built: disclosure control
(issue 7) belongs there.
"""

from __future__ import annotations

import csv
import io
import re

from fastapi import APIRouter, HTTPException, Request, Response
from starlette.routing import BaseRoute

from gapwatch.api.answers import Area, answer
from gapwatch.api.deps import ContextDep
from gapwatch.api.routes.indicators import RESPONSES, Params, _icb_code
from gapwatch.api.schemas import EthnicGapOut, GroupOut, ImdGapOut, IndicatorValuesOut
from gapwatch.core.errors import StatisticsError

__all__ = ["COLUMNS", "csv_rows", "router"]

router = APIRouter(prefix="/v1", tags=["indicators"])

SUFFIX = "/export.csv"
JSON_ROUTE = "/v1/icbs/{icb}/indicators/{indicator}"
COLUMNS = (
    "area",
    "group",
    "numerator",
    "denominator",
    "value",
    "lower95",
    "upper95",
    "unit",
    "window_start",
    "window_end",
    "as_of",
    "measure",
)
"""Group, total and England rows have ``measure`` "value"; the gap rows name theirs
(absolute, ratio, sii, rii; difference and ratio against the reference ethnic group)
and carry it in value/lower95/upper95. One rectangular table, so a spreadsheet or
``pandas.read_csv`` takes it as it is."""

Cell = str | int | float | None


def csv_rows(values: IndicatorValuesOut) -> list[tuple[Cell, ...]]:
    """Every data row of the export, in COLUMNS order (the header is not included)."""
    window = (values.window.start, values.window.end, values.as_of)
    rows: list[tuple[Cell, ...]] = []

    def group_row(area: str, g: GroupOut) -> tuple[Cell, ...]:
        return (area, g.group, g.numerator, g.denominator, g.value, g.lower95, g.upper95)

    def add(head: tuple[Cell, ...], unit: str, measure: str) -> None:
        rows.append((*head, unit, *window, measure))

    for g in values.groups:
        add(group_row(values.area, g), values.unit, "value")
    add(group_row(values.area, values.total), values.unit, "value")
    if values.benchmark is not None:
        b = values.benchmark
        add((b.area, "all", None, None, b.value, b.lower95, b.upper95), values.unit, "value")
    gap = values.gap
    if isinstance(gap, ImdGapOut):
        pair = f"{gap.most_deprived} vs {gap.least_deprived}"
        for measure, group, value, lower, upper, unit in (
            ("absolute", pair, gap.absolute, gap.absolute_lower, gap.absolute_upper, values.unit),
            ("ratio", pair, gap.ratio, gap.ratio_lower, gap.ratio_upper, "ratio"),
            ("sii", values.by, gap.sii, gap.sii_lower, gap.sii_upper, values.unit),
            ("rii", values.by, gap.rii, gap.rii_lower, gap.rii_upper, "ratio"),
        ):
            add((values.area, group, None, None, value, lower, upper), unit, measure)
    elif isinstance(gap, EthnicGapOut):
        for c in gap.comparisons:
            pair = f"{c.group} vs {gap.reference}"
            add(
                (
                    values.area,
                    pair,
                    None,
                    None,
                    c.difference,
                    c.difference_lower,
                    c.difference_upper,
                ),
                values.unit,
                "difference",
            )
            add(
                (values.area, pair, None, None, c.ratio, c.ratio_lower, c.ratio_upper),
                "ratio",
                "ratio",
            )
    return rows


def render_csv(rows: list[tuple[Cell, ...]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow("" if cell is None else cell for cell in row)
    return out.getvalue()


def filename(values: IndicatorValuesOut) -> str:
    stamp = values.as_of.replace("-", "").replace(":", "")
    raw = f"gapwatch_{values.area}_{values.indicator}_{values.by}_{values.window.requested}_{stamp}"
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", raw) + ".csv"


def _json_route(request: Request) -> BaseRoute | None:
    """The indicator route, so request metrics of its (shared) cached answer keep their
    label when the fast path replays it."""
    for route in request.app.routes:
        if getattr(route, "path", None) == JSON_ROUTE:
            found: BaseRoute = route
            return found
    return None


@router.get(
    "/icbs/{icb}/indicators/{indicator}/export.csv",
    summary="The indicator view as CSV: groups, ICB total, England and the gap",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}}, **RESPONSES},
)
async def export_csv(ctx: ContextDep, request: Request, icb: str, params: Params) -> Response:
    code = _icb_code(ctx, icb)
    area = Area("icb", code, ctx.ref.icbs[code].name, (code,))
    path = request.scope["path"].removesuffix(SUFFIX)
    # The JSON endpoint's request key: never this URL's own, or the fast path would
    # replay the JSON body for the CSV URL.
    request_key = (path, request.scope["query_string"])
    try:
        json_answer = await answer(
            area, request_key, lambda: params.query(ctx), ctx, _json_route(request)
        )
    except StatisticsError as exc:
        raise HTTPException(422, str(exc)) from exc
    values = IndicatorValuesOut.model_validate_json(bytes(json_answer.body))
    return Response(
        render_csv(csv_rows(values)),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{filename(values)}"',
            "Cache-Control": "no-store",
        },
    )

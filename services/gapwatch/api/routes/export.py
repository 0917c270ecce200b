"""CSV export of an ICB's indicator view: each group, the ICB total, England, the gap.

Every count in an export has been through disclosure control (issue 7,
docs/nhs-inequalities.md §5): the rows are the public, controlled answer
(``routes.public.controlled_values``) for the window and breakdown the ICB user asked
for, so a file passed on carries no count of 1 to 7, not even by differencing its
breakdown's cells against its total. Counts show ``*`` when suppressed and are otherwise
rounded to 5; values, limits and the gap are computed from those published counts (so
they can differ a little from the dashboard, which shows an authorised user the exact
figures). England's row is national and needs no control. ``csv_rows`` is the single
place rows are built.
"""

from __future__ import annotations

import csv
import io
import re

from fastapi import APIRouter, Response

from gapwatch.api.answers import DAYS_PER_YEAR, tick_for
from gapwatch.api.auth import AUTH_RESPONSES, ViewerDep
from gapwatch.api.deps import ContextDep
from gapwatch.api.public_schemas import PublicGroupOut, PublicValuesOut
from gapwatch.api.routes.indicators import RESPONSES, Params, _icb_code
from gapwatch.api.routes.public import DISCLOSURE_HEADER, controlled_values
from gapwatch.api.schemas import EthnicGapOut, ImdGapOut
from gapwatch.core.demographics import UNKNOWN
from gapwatch.core.windows import DAY_MS

__all__ = ["COLUMNS", "csv_rows", "router"]

router = APIRouter(prefix="/v1", tags=["indicators"], responses=AUTH_RESPONSES)

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
    "disclosure_control",
)
"""Group, total and England rows have ``measure`` "value"; the gap rows name theirs
(absolute, ratio, sii, rii; difference and ratio against the reference ethnic group)
and carry it in value/lower95/upper95. ``disclosure_control`` says what was done to
the row's counts (``rounded to 5``, ``suppressed``, ``denominator suppressed``), that a
gap row comes ``from published counts`` (or is ``suppressed`` with a group it needs), or
``not needed (national)`` for England. One rectangular table, so a spreadsheet or
``pandas.read_csv`` takes it as it is."""

ROUNDED = "rounded to 5"
SUPPRESSED = "suppressed"
DENOMINATOR_SUPPRESSED = "denominator suppressed"
FROM_PUBLISHED = "from published counts"
NATIONAL = "not needed (national)"

Cell = str | int | float | None


def csv_rows(values: PublicValuesOut) -> list[tuple[Cell, ...]]:
    """Every data row of the export, in COLUMNS order (the header is not included)."""
    window = (values.window.start, values.window.end, values.as_of)
    area = values.icb
    rows: list[tuple[Cell, ...]] = []

    def add(head: tuple[Cell, ...], unit: str, measure: str, control: str) -> None:
        rows.append((*head, unit, *window, measure, control))

    def group_row(g: PublicGroupOut) -> None:
        denominator: Cell = g.population if g.denominator_display is None else g.denominator_display
        control = (
            SUPPRESSED
            if g.numerator is None
            else DENOMINATOR_SUPPRESSED
            if g.suppressed
            else ROUNDED
        )
        head = (area, g.group, g.numerator_display, denominator, g.value, g.lower95, g.upper95)
        add(head, values.unit, "value", control)

    def gap_row(
        group: str,
        value: float | None,
        limits: tuple[Cell, Cell],
        unit: str,
        measure: str,
        needs: set[str],
    ) -> None:
        control = SUPPRESSED if value is None and needs & hidden else FROM_PUBLISHED
        add((area, group, None, None, value, *limits), unit, measure, control)

    hidden = set(values.disclosure_control.suppressed)
    for g in values.groups:
        group_row(g)
    group_row(values.total)
    if values.benchmark is not None:
        b = values.benchmark
        head = (b.area, "all", None, None, b.value, b.lower95, b.upper95)
        add(head, values.unit, "value", NATIONAL)
    gap = values.gap
    if isinstance(gap, ImdGapOut):
        pair = f"{gap.most_deprived} vs {gap.least_deprived}"
        ends = {gap.most_deprived, gap.least_deprived}
        every = {g.group for g in values.groups} - {UNKNOWN}
        for measure, group, value, lower, upper, unit, needs in (
            (
                "absolute",
                pair,
                gap.absolute,
                gap.absolute_lower,
                gap.absolute_upper,
                values.unit,
                ends,
            ),
            ("ratio", pair, gap.ratio, gap.ratio_lower, gap.ratio_upper, "ratio", ends),
            ("sii", values.by, gap.sii, gap.sii_lower, gap.sii_upper, values.unit, every),
            ("rii", values.by, gap.rii, gap.rii_lower, gap.rii_upper, "ratio", every),
        ):
            gap_row(group, value, (lower, upper), unit, measure, needs)
    elif isinstance(gap, EthnicGapOut):
        for c in gap.comparisons:
            pair = f"{c.group} vs {gap.reference}"
            needs = {c.group, gap.reference}
            limits = (c.difference_lower, c.difference_upper)
            gap_row(pair, c.difference, limits, values.unit, "difference", needs)
            gap_row(pair, c.ratio, (c.ratio_lower, c.ratio_upper), "ratio", "ratio", needs)
    return rows


def render_csv(rows: list[tuple[Cell, ...]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow("" if cell is None else cell for cell in row)
    return out.getvalue()


def filename(values: PublicValuesOut) -> str:
    stamp = values.as_of.replace("-", "").replace(":", "")
    raw = f"gapwatch_{values.icb}_{values.indicator}_{values.by}_{values.window.requested}_{stamp}"
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", raw) + ".csv"


@router.get(
    "/icbs/{icb}/indicators/{indicator}/export.csv",
    summary="The indicator view as disclosure-controlled CSV: groups, ICB total, England, gap",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}}, **RESPONSES},
)
async def export_csv(ctx: ContextDep, viewer: ViewerDep, icb: str, params: Params) -> Response:
    code = _icb_code(ctx, icb)
    viewer.require_icb(code)
    query = params.query(ctx)
    # Elapsed time as the JSON answer counts it (answers.tick_for), so both carry the
    # same as_of and the same years for a window that is still open.
    now = ctx.clock_ms()
    stamp = now - now % tick_for(query.window)
    elapsed_ms = max(min(query.window.end_ms, stamp) - query.window.start_ms, 0)
    years = max(elapsed_ms, 1) / DAY_MS / DAYS_PER_YEAR
    values = await controlled_values(ctx, code, query, years, stamp)
    return Response(
        render_csv(csv_rows(values)),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{filename(values)}"',
            "Cache-Control": "no-store",
            **DISCLOSURE_HEADER,
        },
    )

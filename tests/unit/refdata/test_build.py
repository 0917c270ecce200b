"""`gapwatch refdata build` from synthetic files in the publishers' own formats.

The world: ten 2021 LSOAs in two ICBs (Greater Manchester QOP, North East London QMF).
Eight 2011 LSOAs are unchanged; E01099001 (2011) was split into E01000009 and E01000010.
One Welsh LSOA appears only in the England-and-Wales files. IMD rank i belongs to
E010000{i:02}, so decile = rank (N = 10) and quintile = ceil(rank / 2).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import math
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from gapwatch.adapters.refdata_files import FILES, load_reference_data
from gapwatch.core.errors import ConfigError
from gapwatch.refdata.build import Inputs, build
from gapwatch.refdata.command import check_directory, register
from gapwatch.refdata.readers import open_records
from gapwatch.refdata.sources import Column, Source, SourceError, normalise_header
from gapwatch.settings import RefdataSettings, Settings

N = 10
LSOAS = [f"E010000{i:02d}" for i in range(1, N + 1)]
SPLIT_2011 = "E01099001"
WELSH = "W01000001"
QOP = ("E54000057", "QOP", "NHS Greater Manchester Integrated Care Board")
QMF = ("E54000029", "QMF", "NHS North East London Integrated Care Board")
SICBLS = {
    "E38000217": ("14L", "NHS Greater Manchester ICB - 14L", QOP),
    "E38000182": ("02A", "NHS Greater Manchester ICB - 02A", QOP),
    "E38000255": ("A3A8R", "NHS North East London ICB - A3A8R", QMF),
}
# LSOA 2021 -> sub-ICB location: 1-4 in 14L, 5-6 in 02A, 7-10 in A3A8R (QMF).
SICBL_OF = {code: ("E38000217" if i <= 4 else "E38000182" if i <= 6 else "E38000255")
            for i, code in enumerate(LSOAS, 1)}  # fmt: skip

RANK_SUFFIX = " (where 1 is most deprived)"
DECILE_SUFFIX = " (where 1 is most deprived 10% of LSOAs)"
IMD = "Index of Multiple Deprivation (IMD)"


def write_csv(path: Path, rows: list[list[object]], *, encoding: str = "utf-8-sig") -> Path:
    with path.open("w", newline="", encoding=encoding) as handle:
        csv.writer(handle).writerows(rows)
    return path


def iod_rows() -> list[list[object]]:
    """File 7 as MHCLG publishes it: its header order, its cut-off "...10% of LSO" header,
    and columns the build leaves out (IDACI, population denominators)."""
    cyp_decile = "Children and Young People Sub-domain Decile" + DECILE_SUFFIX
    header: list[object] = [
        "LSOA code (2021)", "LSOA name (2021)", "Local Authority District code (2024)",
        "Local Authority District name (2024)", f"{IMD} Score", f"{IMD} Rank{RANK_SUFFIX}",
        f"{IMD} Decile{DECILE_SUFFIX}", "Income Score (rate)", f"Income Rank{RANK_SUFFIX}",
        f"Income Decile{DECILE_SUFFIX}",
        "Income Deprivation Affecting Children Index (IDACI) Score (rate)",
        f"Children and Young People Sub-domain Rank{RANK_SUFFIX}",
        cyp_decile[:-2], "Total population: mid 2022",
    ]  # fmt: skip
    rows: list[list[object]] = [header]
    for rank, code in enumerate(LSOAS, 1):
        income = N + 1 - rank
        rows.append(
            [code, f"Area {code[-2:]}", "E08000003", "Manchester", f"{60 - 5 * rank:.3f}", rank,
             rank, "0.1", income, math.ceil(10 * income / N), "0.2", rank, rank, 1500]
        )  # fmt: skip
    return rows


def icb_lookup_rows() -> list[list[object]]:
    header: list[object] = [*("LSOA21CD,LSOA21NM,SICBL24CD,SICBL24CDH,SICBL24NM,ICB24CD,"
        "ICB24CDH,ICB24NM,CAL24CD,CAL24NM,LAD24CD,LAD24NM,ObjectId").split(",")]  # fmt: skip
    rows: list[list[object]] = [header]
    for n, code in enumerate(LSOAS, 1):
        sicbl = SICBL_OF[code]
        ods, name, icb = SICBLS[sicbl]
        rows.append([code, f"Area {code[-2:]}", sicbl, ods, name, *icb, "E56000001",
                     "Greater Manchester", "E08000003", "Manchester", n])  # fmt: skip
    return rows


def lsoa11_rows() -> list[list[object]]:
    header = "F_LSOA11CD,LSOA11NM,LSOA21CD,LSOA21NM,CHGIND,LAD22CD,LAD22NM,LAD22NMW,ObjectId"
    rows: list[list[object]] = [[*header.split(",")]]
    for code in LSOAS[:8]:
        rows.append([code, "x", code, "x", "U", "E08000003", "Manchester", "", 1])
    for code in LSOAS[8:]:
        rows.append([SPLIT_2011, "x", code, "x", "S", "E08000003", "Manchester", "", 1])
    rows.append([WELSH, "Cardiff 001A", WELSH, "Cardiff 001A", "U", "W06000015", "Cardiff", "", 1])
    rows.append(rows[1])  # ArcGIS exports can repeat a row
    return rows


POPULATION_2011 = [*LSOAS[:8], SPLIT_2011, WELSH]


def ages(code: str, sex: str) -> list[int]:
    """Deterministic counts per single year 0..89 and 90+ (91 values)."""
    seed = POPULATION_2011.index(code) + (1 if sex == "M" else 2)
    return [(seed * (a + 3)) % 7 + 1 for a in range(91)]


def population_rows(sex: str, *, all_ages_delta: int = 0) -> list[list[object]]:
    """One SAPE22DT2 sheet exported to CSV: title rows above the header, as Excel keeps."""
    title = "Males" if sex == "M" else "Females"
    header: list[object] = [
        "LSOA Code", "LSOA Name", "LA Code (2019 boundaries)", "LA name (2019 boundaries)",
        "LA Code (2020 boundaries)", "LA name (2020 boundaries)", "All Ages",
        *map(str, range(90)), "90+",
    ]  # fmt: skip
    rows: list[list[object]] = [
        ["Mid-2019 Population Estimates for Lower Layer Super Output Areas"],
        ["National Statistics"],
        [],
        [f"All {title}"],
        header,
    ]
    for code in POPULATION_2011:
        counts = ages(code, sex)
        la = ("W06000015", "Cardiff") if code == WELSH else ("E08000003", "Manchester")
        name = "Ynys Môn 001A" if code == WELSH else f"Manchester {code[-3:]}"
        rows.append([code, name, *la, *la, sum(counts) + all_ages_delta, *counts])
    return rows


def population_total(prefix: str) -> int:
    return sum(sum(ages(c, s)) for c in POPULATION_2011 if c.startswith(prefix) for s in "FM")


GROUPS = ["Asian, Asian British or Asian Welsh",
          "Black, Black British, Black Welsh, Caribbean or African",
          "Mixed or Multiple ethnic groups", "White", "Other ethnic group"]  # fmt: skip


def ethnicity_zip(path: Path) -> Path:
    """Nomis bulk zip: one CSV per geography level, sub-groups between the groups."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    header = ["date", "geography", "geography code", "Ethnic group: Total: All usual residents"]
    for group in GROUPS:
        header += [f"Ethnic group: {group}", f"Ethnic group: {group}: Other"]
    writer.writerow(header)
    for i, code in enumerate([*LSOAS, WELSH], 1):
        groups = [i, 2 * i, 3, 100 + i, 1]
        writer.writerow([2021, code, code, sum(groups), *(v for g in groups for v in (g, 0))])
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("census2021-ts021-ltla.csv", "date,geography,geography code\n")
        archive.writestr("census2021-ts021-lsoa.csv", buffer.getvalue())
    return path


def etr_rows() -> list[list[object]]:
    """ODS etr.csv: no header, 27 positional fields."""

    def trust(code: str, name: str, region: str, icb: str, close: str = "") -> list[object]:
        cells: list[object] = [""] * 27
        cells[:4] = [code, name, region, icb]
        cells[4], cells[7], cells[9] = "MAIN ROAD", "TOWN", "M13 9WL"
        cells[10], cells[11], cells[17], cells[21], cells[23] = "20171001", close, "", "1", "B"
        return cells

    return [
        trust("R0A", "MANCHESTER UNIVERSITY NHS FOUNDATION TRUST", "Y62", "QOP"),
        trust("R1H", "BARTS HEALTH NHS TRUST", "Y56", "QMF"),
        trust("RW3", "CENTRAL MANCHESTER NHS FT", "Y62", "QOP", close="20170930"),
        trust("RQF", "VELINDRE NHS TRUST", "", ""),
    ]


def onspd_rows() -> list[list[object]]:
    header: list[object] = ["pcd", "pcd2", "pcds", "dointr", "doterm", "lsoa21cd", "msoa21cd"]
    header += ["lat", "long"]
    return [
        header,
        ["M13 9WL", "M13  9WL", "M13 9WL", "199801", "", LSOAS[0], "E02001", "53.46", "-2.23"],
        ["E1  2ES", "E1   2ES", "E1 2ES", "199801", "", LSOAS[7], "E02002", "51.52", "-0.06"],
        ["CF10 1AA", "CF10 1AA", "CF10 1AA", "199801", "", WELSH, "W02001", "51.48", "-3.18"],
    ]


@pytest.fixture
def inputs(tmp_path: Path) -> Inputs:
    src = tmp_path / "downloads"
    src.mkdir()
    iod = src / "File_7_IoD2025_All_Ranks_Scores_Deciles_Population_Denominators.csv"
    onspd = src / "ONSPD_FEB_2025_UK.csv.gz"
    with gzip.open(onspd, "wt", newline="") as handle:
        csv.writer(handle).writerows(onspd_rows())
    return Inputs(
        iod=write_csv(iod, iod_rows()),
        icb_lookup=write_csv(src / "LSOA21_SICBL24_ICB24_CAL24_LAD24_EN_LU.csv", icb_lookup_rows()),
        lsoa11_lsoa21=write_csv(src / "LSOA11_LSOA21_LAD22_EW_LU.csv", lsoa11_rows()),
        # Excel's plain "CSV" is Windows-1252: "Ynys Môn" must survive.
        population_male=write_csv(src / "males.csv", population_rows("M"), encoding="cp1252"),
        population_female=write_csv(src / "females.csv", population_rows("F")),
        ethnicity=ethnicity_zip(src / "census2021-ts021.zip"),
        trusts=write_csv(src / "etr.csv", etr_rows()),
        postcodes=onspd,
    )


def read_gz(path: Path) -> list[dict[str, str]]:
    with gzip.open(path, "rt", newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_built_directory_loads_with_each_lsoa_in_its_icb_and_quintile(
    inputs: Inputs, tmp_path: Path
) -> None:
    out = tmp_path / "refdata"
    build(inputs, out)
    data = load_reference_data(out)

    assert len(data.areas) - len(data.lsoa11_changed) == N
    area = data.areas["E01000003"]
    assert (area.icb, area.imd_rank, area.imd_decile, area.imd_quintile) == ("QOP", 3, 3, 2)
    area = data.areas["E01000010"]
    assert (area.icb, area.imd_quintile) == ("QMF", 5)
    assert data.icbs["QOP"].region_name == "North West"
    assert data.icbs["QMF"].region_ods_code == "Y56"
    assert data.icbs["QMF"].ons_code == "E54000029"
    columns = list(read_gz(out / FILES["imd"])[0])
    assert columns == [
        "lsoa21_code", "lsoa21_name", "lad24_code", "lad24_name", "imd_score", "imd_rank",
        "imd_decile", "imd_quintile", "income_score", "income_rank", "income_decile",
        "sub_children_young_people_rank", "sub_children_young_people_decile",
    ]  # fmt: skip


def test_a_split_2011_lsoa_resolves_to_the_median_ranked_2021_part(
    inputs: Inputs, tmp_path: Path
) -> None:
    out = tmp_path / "refdata"
    build(inputs, out)
    data = load_reference_data(out)

    assert SPLIT_2011 in data.lsoa11_changed
    # Parts E01000009 (rank 9) and E01000010 (rank 10): the lower median is rank 9.
    assert data.areas[SPLIT_2011].lsoa21 == "E01000009"
    assert data.areas[SPLIT_2011].imd_rank == 9
    pairs = read_gz(out / FILES["lsoa11_21"])
    assert len(pairs) == 11, "the repeated ArcGIS row is dropped"


def test_population_keeps_every_person_and_england_total_is_reported(
    inputs: Inputs, tmp_path: Path
) -> None:
    out = tmp_path / "refdata"
    report = build(inputs, out)

    assert report.population_england == population_total("E")
    assert report.population_england_wales == population_total("")
    rows = read_gz(out / FILES["population"])
    assert [(r["lsoa11_code"], r["sex"]) for r in rows[:2]] == [(LSOAS[0], "F"), (LSOAS[0], "M")]
    welsh_rows = [r for r in rows if r["lsoa11_code"] == WELSH]
    assert [r["lsoa11_name"] for r in welsh_rows] == ["Ynys Môn 001A"] * 2, "cp1252 sheet too"
    welsh = welsh_rows[0]
    assert int(welsh["age_90_plus"]) == ages(WELSH, "F")[90]
    assert int(welsh["all_ages"]) == sum(ages(WELSH, "F"))
    cells = load_reference_data(out).population.cells
    england = sum(sum(by_cell.values()) for by_cell in cells.values())
    assert england == pytest.approx(population_total("E"))


def test_optional_inputs_give_trusts_ethnicity_and_postcodes(
    inputs: Inputs, tmp_path: Path
) -> None:
    out = tmp_path / "refdata"
    report = build(inputs, out)
    data = load_reference_data(out)

    assert data.trusts["R0A"].home_icb == "QOP"
    assert data.trusts["RQF"].home_icb is None
    trusts = {r["org_code"]: r for r in read_gz(out / FILES["trusts"])}
    assert trusts["RW3"]["close_date"] == "2017-09-30"
    assert trusts["RW3"]["is_open"] == "False"
    assert trusts["R1H"]["nhser_name"] == "London"
    assert report.trusts_open == 3
    assert data.population.ethnic["QMF"]["white"] == sum(100 + i for i in range(7, 11))
    assert data.postcodes == {"M13 9WL": LSOAS[0], "E1 2ES": LSOAS[7]}
    assert report.postcodes_outside == 1


def test_a_missing_required_column_names_the_file_and_the_column(
    inputs: Inputs, tmp_path: Path
) -> None:
    rows = icb_lookup_rows()
    broken = [[cell for i, cell in enumerate(row) if i != 6] for row in rows]  # ICB24CDH
    write_csv(inputs.icb_lookup, broken)

    with pytest.raises(SourceError) as caught:
        build(inputs, tmp_path / "refdata")
    message = str(caught.value)
    assert "LSOA21_SICBL24_ICB24_CAL24_LAD24_EN_LU.csv" in message
    assert "'icb24_ods_code'" in message
    assert "ICB24CDH" in message
    assert not (tmp_path / "refdata" / FILES["imd"]).exists()


def test_an_iod2019_file_is_refused_with_the_reason(inputs: Inputs, tmp_path: Path) -> None:
    rows = iod_rows()
    rows[0][0] = "LSOA code (2011)"
    write_csv(inputs.iod, rows)

    with pytest.raises(SourceError, match=r"lsoa21_code.*IoD2019 file \(LSOA 2011\)"):
        build(inputs, tmp_path / "refdata")


@pytest.mark.parametrize(
    ("row", "column", "value", "complaint"),
    [
        (2, 5, 1, "imd_rank is not 1..10"),
        (1, 6, 2, "imd_decile 2"),
        (2, 4, "70.000", "imd_score rises"),
        (3, 0, LSOAS[0], "lsoa21_code repeats"),
    ],
)
def test_inconsistent_iod_values_are_refused(
    inputs: Inputs, tmp_path: Path, row: int, column: int, value: object, complaint: str
) -> None:
    rows = iod_rows()
    rows[row][column] = value
    write_csv(inputs.iod, rows)

    with pytest.raises(SourceError, match=complaint):
        build(inputs, tmp_path / "refdata")


def test_every_iod_lsoa_must_have_an_icb(inputs: Inputs, tmp_path: Path) -> None:
    write_csv(inputs.icb_lookup, icb_lookup_rows()[:-1])

    with pytest.raises(SourceError, match="1 LSOAs of File_7.* are not in LSOA21_SICBL24"):
        build(inputs, tmp_path / "refdata")


def test_all_ages_must_equal_the_sum_of_the_ages(inputs: Inputs, tmp_path: Path) -> None:
    write_csv(inputs.population_female, population_rows("F", all_ages_delta=1))

    with pytest.raises(SourceError, match=r"females.csv row 6: All Ages"):
        build(inputs, tmp_path / "refdata")


def test_the_same_sheet_exported_twice_is_refused(inputs: Inputs, tmp_path: Path) -> None:
    write_csv(inputs.population_female, population_rows("M"))

    with pytest.raises(SourceError, match="same sheet was exported twice"):
        build(inputs, tmp_path / "refdata")


def test_a_region_lookup_replaces_the_embedded_regions(inputs: Inputs, tmp_path: Path) -> None:
    header: list[object] = [*("SICBL24CD,SICBL24CDH,SICBL24NM,ICB24CD,ICB24CDH,ICB24NM,"
        "NHSER24CD,NHSER24CDH,NHSER24NM").split(",")]  # fmt: skip
    rows: list[list[object]] = [header]
    for sicbl, (ods, name, icb) in SICBLS.items():
        region = ["E40000003", "Y56", "London test"] if icb == QMF else ["E40000010", "Y62", "NW"]
        rows.append([sicbl, ods, name, *icb, *region])
    region_lookup = write_csv(tmp_path / "regions.csv", rows)
    out = tmp_path / "refdata"
    report = build(replace(inputs, region_lookup=region_lookup), out)

    assert report.region_source == "regions.csv"
    assert load_reference_data(out).icbs["QMF"].region_name == "London test"


def test_an_icb_without_a_region_asks_for_the_region_lookup(inputs: Inputs, tmp_path: Path) -> None:
    rows = icb_lookup_rows()
    rows[-1][5:8] = ["E54000099", "QZZ", "NHS Imaginary ICB"]
    write_csv(inputs.icb_lookup, rows)

    with pytest.raises(SourceError, match="QZZ.*--region-lookup"):
        build(inputs, tmp_path / "refdata")


def test_inputs_may_be_zipped_or_gzipped(inputs: Inputs, tmp_path: Path) -> None:
    archive = tmp_path / "File_7.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.write(inputs.iod, "File_7_IoD2025.csv")
    packed = tmp_path / "lookup.csv.gz"
    packed.write_bytes(gzip.compress(inputs.icb_lookup.read_bytes()))
    out = tmp_path / "refdata"
    build(replace(inputs, iod=archive, icb_lookup=packed), out)

    assert load_reference_data(out).areas["E01000001"].imd_rank == 1


def test_an_excel_workbook_is_refused_with_what_to_do(inputs: Inputs, tmp_path: Path) -> None:
    workbook = tmp_path / "SAPE22DT2-mid-2019-lsoa-syoa-estimates-unformatted.xlsx"
    with zipfile.ZipFile(workbook, "w") as handle:
        handle.writestr("[Content_Types].xml", "<Types/>")
        handle.writestr("xl/workbook.xml", "<workbook/>")

    with pytest.raises(SourceError, match="unformatted.xlsx is an Excel workbook: save the sheet"):
        build(replace(inputs, population_male=workbook), tmp_path / "refdata")


def test_the_build_is_byte_for_byte_reproducible(inputs: Inputs, tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    names = build(inputs, first).written
    build(inputs, second)

    assert {n: (first / n).read_bytes() for n in names} == {
        n: (second / n).read_bytes() for n in names
    }
    assert [p.name for p in first.iterdir() if p.name.startswith(".")] == []


def test_existing_files_are_replaced_only_with_force(inputs: Inputs, tmp_path: Path) -> None:
    out = tmp_path / "refdata"
    build(inputs, out)

    with pytest.raises(ConfigError, match="pass --force"):
        build(inputs, out)
    build(inputs, out, force=True)


def test_without_trusts_an_empty_trusts_file_keeps_the_directory_loadable(
    inputs: Inputs, tmp_path: Path
) -> None:
    out = tmp_path / "refdata"
    report = build(replace(inputs, trusts=None), out)

    assert load_reference_data(out).trusts == {}
    assert any("no --trusts" in w for w in report.warnings)


def test_header_matching_ignores_case_spacing_and_punctuation() -> None:
    assert normalise_header("\ufeffLSOA code (2021)") == normalise_header("lsoa_code_2021")
    assert normalise_header("Ethnic group: White; measures: Value") == "ethnic group white"


def test_a_header_must_not_be_ambiguous(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "x.csv", [["pcds", "pcds", "b"], ["M1 1AA", "M1 1AA", "1"]])
    twice = Source("test", (Column("postcode", ("pcds",)),))
    shared = Source("test", (Column("a", ("b",)), Column("c", ("b",))))

    with pytest.raises(SourceError, match="'postcode' is ambiguous: 'pcds', 'pcds'"):
        with open_records(path, twice):
            pass
    with pytest.raises(SourceError, match="header 'b' matches several columns"):
        with open_records(path, shared):
            pass


def test_check_names_missing_files_and_missing_columns(inputs: Inputs, tmp_path: Path) -> None:
    out = tmp_path / "refdata"
    build(inputs, out)
    assert any("LSOAs (2021): 10" in line for line in check_directory(out))
    england = f"England population (ONS mid-2019, on LSOA 2021): {population_total('E'):,}"
    assert any(england in line for line in check_directory(out))

    rows = read_gz(out / FILES["imd"])
    with gzip.open(out / FILES["imd"], "wt", newline="") as handle:
        writer = csv.DictWriter(handle, [k for k in rows[0] if k != "imd_quintile"])
        writer.writeheader()
        writer.writerows({k: v for k, v in r.items() if k != "imd_quintile"} for r in rows)
    with pytest.raises(
        ConfigError, match="iod2025_lsoa21_england.csv.gz lacks column imd_quintile"
    ):
        check_directory(out)

    (out / FILES["trusts"]).unlink()
    with pytest.raises(ConfigError, match="lacks .*nhs_trusts_ods_etr.csv.gz"):
        check_directory(out)


def test_the_command_builds_then_checks(
    inputs: Inputs, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "refdata"
    settings = Settings(refdata=RefdataSettings(dir=out))
    argv = ["refdata", "build", "--iod", str(inputs.iod), "--icb-lookup", str(inputs.icb_lookup),
            "--lsoa11-lsoa21", str(inputs.lsoa11_lsoa21),
            "--population-male", str(inputs.population_male),
            "--population-female", str(inputs.population_female)]  # fmt: skip

    assert run(argv, settings) == 0
    printed = capsys.readouterr().out
    assert f"population mid-2019, England: {population_total('E'):,}" in printed
    assert "ICBs: 2 in 2 NHS England regions" in printed
    assert run(["refdata", "check"], settings) == 0
    assert run(["refdata", "check", "--dir", str(tmp_path / "nowhere")], settings) == 1
    assert run([*argv, "--catchment", "x.csv", "--force"], settings) == 2
    assert run([*argv, "--iod", str(inputs.icb_lookup), "--force"], settings) == 2


def run(argv: list[str], settings: Settings) -> int:
    parser = argparse.ArgumentParser(prog="gapwatch")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    result: int = args.func(args, settings)
    return result

"""Builds repogen's versioned report templates: one .docx per template id of the registry,
written with python-docx and carrying docxtpl (Jinja) tags that the factory fills from a work
order's export bundle.

    .venv/bin/python services/repogen/scripts/make_report_templates.py        # (re)write them
    .venv/bin/python services/repogen/scripts/make_report_templates.py --check  # exit 1 on drift

The files are committed (services/repogen/src/zenops_repogen/templates/<ID>.docx) and their
bytes are reproducible: fixed document properties and fixed zip entry times, so rebuilding
with the locked python-docx gives the same bytes and a test fails when a template was edited
by hand or this script changed without a rebuild. A template changes meaning only with a new
id (…_V2) and a registry entry: a rendered report names the template id and version it came
from, and old reports must stay explainable.

The context every template is filled with is built by zenops_repogen.factory.context
(REPORT_CONTEXT there lists its keys); values arrive formatted (rupees in Indian digit
grouping, areas with their unit) so the templates hold no logic beyond loops and conditions.
"""

from __future__ import annotations

import argparse
import io
import sys
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from docx import Document
from docx.enum.table import WD_TABLE_ALIGNMENT
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.shared import Cm, Pt

TEMPLATES_DIR = Path(__file__).resolve().parents[1] / "src" / "zenops_repogen" / "templates"
# Fixed, so the bytes are reproducible.
STAMP = datetime(2025, 1, 1, tzinfo=UTC)
ZIP_TIME = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class Spec:
    """What differs between the report formats."""

    template_id: str
    version: int
    title: str
    subtitle: str
    addressed_to: str
    # Extra declarations of this format (paragraphs), after the standard ones.
    declarations: tuple[str, ...]
    # Whether the format asks for the valuer's comment on marketability and the two-valuer rule.
    large_value: bool = False


SPECS = (
    Spec(
        template_id="SBI_UNDER_5CR_V1",
        version=1,
        title="REPORT OF VALUATION OF IMMOVABLE PROPERTY",
        subtitle="State Bank of India format — properties of fair market value below ₹5 crore",
        addressed_to="The Branch Manager, State Bank of India",
        declarations=(
            "The property was inspected by the undersigned (or by the inspector named in this report on "
            "the undersigned's behalf) on the date stated, and the particulars furnished are true and correct "
            "to the best of our knowledge and belief.",
            "We have no direct or indirect interest in the property valued, and we are not related to the "
            "borrower or the owner.",
            "The valuation has been made in accordance with the bank's policy on valuation of properties and "
            "the standards of the Institution of Valuers.",
        ),
    ),
    Spec(
        template_id="SBI_5CR_AND_ABOVE_V1",
        version=1,
        title="REPORT OF VALUATION OF IMMOVABLE PROPERTY",
        subtitle="State Bank of India format — properties of fair market value of ₹5 crore and above",
        addressed_to="The Branch Manager, State Bank of India",
        declarations=(
            "The property was inspected by the undersigned (or by the inspector named in this report on "
            "the undersigned's behalf) on the date stated, and the particulars furnished are true and correct "
            "to the best of our knowledge and belief.",
            "We have no direct or indirect interest in the property valued, and we are not related to the "
            "borrower or the owner.",
            "For properties of ₹5 crore and above the bank obtains valuations from two empanelled valuers; "
            "this report is one of them and has been prepared independently.",
            "The valuation has been made in accordance with the bank's policy on valuation of properties and "
            "the standards of the Institution of Valuers.",
        ),
        large_value=True,
    ),
    Spec(
        template_id="GENERIC_BANK_V1",
        version=1,
        title="VALUATION REPORT",
        subtitle="Immovable property — standard format for banks and financial institutions",
        addressed_to="The Branch Manager",
        declarations=(
            "The property was inspected on the date stated and the particulars furnished are true and correct "
            "to the best of our knowledge and belief.",
            "We have no direct or indirect interest in the property valued.",
        ),
    ),
)


# -- building blocks ---------------------------------------------------------------------------


def _para(
    doc,
    text: str = "",
    *,
    style: str | None = None,
    bold: bool = False,
    italic: bool = False,
    align=None,
    size: float | None = None,
):
    p = doc.add_paragraph(style=style)
    if text:
        run = p.add_run(text)
        run.bold = bold
        run.italic = italic
        if size:
            run.font.size = Pt(size)
    if align is not None:
        p.alignment = align
    return p


def _tag(doc, tag: str) -> None:
    """A paragraph holding only a docxtpl paragraph tag ({%p ... %}); docxtpl removes it."""
    doc.add_paragraph(tag)


def _cell(cell, text: str, *, bold: bool = False) -> None:
    cell.text = ""
    run = cell.paragraphs[0].add_run(text)
    run.bold = bold


def _key_values(doc, rows: list[tuple[str, str]], *, widths=(Cm(6), Cm(11))) -> None:
    table = doc.add_table(rows=0, cols=2)
    table.style = "Table Grid"
    table.alignment = WD_TABLE_ALIGNMENT.CENTER
    for label, value in rows:
        cells = table.add_row().cells
        _cell(cells[0], label, bold=True)
        _cell(cells[1], value)
        cells[0].width, cells[1].width = widths
    doc.add_paragraph()


def _loop_table(doc, headers: list[str], loop: str, cells: list[str], *, footer: list[str] | None = None) -> None:
    """A table with a header row, one row per item of `loop` ("x in items") and an optional
    footer row: docxtpl's {%tr %} tags repeat the middle row."""
    table = doc.add_table(rows=1, cols=len(headers))
    table.style = "Table Grid"
    table.alignment = WD_TABLE_ALIGNMENT.CENTER
    for cell, text in zip(table.rows[0].cells, headers, strict=True):
        _cell(cell, text, bold=True)
    _cell(table.add_row().cells[0], f"{{%tr for {loop} %}}")
    for cell, text in zip(table.add_row().cells, cells, strict=True):
        _cell(cell, text)
    _cell(table.add_row().cells[0], "{%tr endfor %}")
    if footer:
        for cell, text in zip(table.add_row().cells, footer, strict=True):
            _cell(cell, text, bold=True)
    doc.add_paragraph()


def _lines(doc, var: str, *, empty: str) -> None:
    """One paragraph per item of the list `var` (free text split into paragraphs)."""
    _tag(doc, f"{{%p if {var} %}}")
    _tag(doc, f"{{%p for line in {var} %}}")
    _para(doc, "{{ line }}")
    _tag(doc, "{%p endfor %}")
    _tag(doc, "{%p else %}")
    _para(doc, empty, italic=True)
    _tag(doc, "{%p endif %}")


# -- the report ------------------------------------------------------------------------------


def build(spec: Spec) -> Document:
    doc = Document()
    normal = doc.styles["Normal"]
    normal.font.name = "Calibri"
    normal.font.size = Pt(10)
    for section in doc.sections:
        section.left_margin = section.right_margin = Cm(2)
        section.top_margin = section.bottom_margin = Cm(1.8)
        footer = section.footer.paragraphs[0]
        footer.text = (
            f"{spec.template_id} (v{spec.version}) · work order {{{{ report.work_order_id }}}} · "
            "snapshot {{ report.snapshot_version }} · bundle {{ report.bundle_sha256_short }}"
        )
        footer.alignment = WD_ALIGN_PARAGRAPH.CENTER

    props = doc.core_properties
    props.title = f"{spec.title} — {spec.template_id}"
    props.subject = spec.subtitle
    props.identifier = spec.template_id
    props.version = str(spec.version)
    props.author = props.last_modified_by = "ZenOps repogen"
    props.keywords = "valuation report template"
    props.comments = "Generated by services/repogen/scripts/make_report_templates.py; do not edit by hand."
    props.created = props.modified = STAMP.replace(tzinfo=None)
    props.revision = 1

    _para(doc, spec.title, style="Title", align=WD_ALIGN_PARAGRAPH.CENTER)
    _para(doc, spec.subtitle, italic=True, align=WD_ALIGN_PARAGRAPH.CENTER)
    _para(doc, f"To: {spec.addressed_to}, branch IFSC {{{{ parties.branch_ifsc }}}}")

    _key_values(
        doc,
        [
            ("Report reference", "{{ report.reference }}"),
            ("Date of report", "{{ report.date }}"),
            ("Bank", "{{ parties.bank_code }}"),
            ("Report format", f"{spec.template_id} (template version {spec.version})"),
            ("Contract snapshot", "version {{ report.snapshot_version }} (rules {{ report.rules_version }})"),
            ("Data bundle SHA-256", "{{ report.bundle_sha256 }}"),
        ],
    )

    doc.add_heading("1. Parties", level=1)
    _key_values(
        doc,
        [
            ("Name of the borrower", "{{ parties.borrower_name }}"),
            ("Name of the owner", "{{ parties.owner_name }}"),
            ("Bank and branch (IFSC)", "{{ parties.bank_code }} / {{ parties.branch_ifsc }}"),
        ],
    )

    doc.add_heading("2. Description of the property", level=1)
    _key_values(
        doc,
        [
            ("Postal address", "{{ property.address }}"),
            ("Type of property", "{{ property.property_type }}"),
            ("Co-operative society property", "{{ property.coop }}"),
            ("Ownership", "{{ property.ownership }}"),
            ("Tenure (freehold / leasehold)", "{{ property.tenure }}"),
            ("Occupancy", "{{ property.occupancy }}"),
        ],
    )
    _para(doc, "Boundaries", bold=True)
    _loop_table(
        doc,
        ["Side", "As per documents / as found on site"],
        "b in property.boundaries",
        ["{{ b.side }}", "{{ b.text }}"],
    )

    doc.add_heading("3. Areas", level=1)
    _para(
        doc,
        "Areas as entered, with their standardisation to square metres (1 sq ft = 0.09290304 sq m, "
        "rounded half-up to two decimals) and to square feet.",
    )
    _loop_table(
        doc,
        ["Area", "As entered", "Square feet", "Square metres"],
        "a in areas",
        ["{{ a.label }}", "{{ a.entered }}", "{{ a.sqft }}", "{{ a.sqm }}"],
    )

    doc.add_heading("4. Valuation", level=1)
    _loop_table(
        doc,
        ["#", "Description", "Area (sq m)", "Rate (₹ per sq m)", "Amount (₹)"],
        "l in lines",
        ["{{ l.n }}", "{{ l.description }}", "{{ l.area_sqm }}", "{{ l.rate }}", "{{ l.amount }}"],
    )
    _tag(doc, "{%p if extras %}")
    _para(doc, "Amenities and extras", bold=True)
    _loop_table(
        doc, ["#", "Description", "Amount (₹)"], "x in extras", ["{{ x.n }}", "{{ x.description }}", "{{ x.amount }}"]
    )
    _tag(doc, "{%p endif %}")
    _tag(doc, "{%p if values.coop %}")
    _para(
        doc,
        "Co-operative society property: the adopted value of {{ values.adopted }} "
        "({{ values.adopted_words }}) is the realisable value; the fair market value is derived from it "
        "at the realisable ratio of {{ values.realisable_percent }}%, and every value is rounded up to "
        "the next multiple of ₹500.",
        italic=True,
    )
    _tag(doc, "{%p endif %}")

    doc.add_heading("5. Values", level=1)
    table = doc.add_table(rows=1, cols=3)
    table.style = "Table Grid"
    table.alignment = WD_TABLE_ALIGNMENT.CENTER
    for cell, text in zip(table.rows[0].cells, ["Value", "In figures", "In words"], strict=True):
        _cell(cell, text, bold=True)
    for label, figures, words in [
        ("Fair market value", "{{ values.fmv }}", "{{ values.fmv_words }}"),
        (
            "Realisable value ({{ values.realisable_percent }}% of FMV)",
            "{{ values.realisable }}",
            "{{ values.realisable_words }}",
        ),
        (
            "Distress (forced-sale) value ({{ values.distress_percent }}% of FMV)",
            "{{ values.distress }}",
            "{{ values.distress_words }}",
        ),
    ]:
        cells = table.add_row().cells
        _cell(cells[0], label, bold=True)
        _cell(cells[1], figures)
        _cell(cells[2], words)
    doc.add_paragraph()
    _para(
        doc,
        "The fair market value of the property as on {{ report.date }} is {{ values.fmv }} ({{ values.fmv_words }}).",
        bold=True,
    )

    doc.add_heading("6. Guideline (government) value", level=1)
    _tag(doc, "{%p if guideline.present %}")
    _key_values(
        doc,
        [
            ("Guideline rate (₹ per sq m)", "{{ guideline.rate }}"),
            ("Guideline value", "{{ guideline.value }}"),
            ("Fair market value", "{{ values.fmv }}"),
            ("Fair market value against guideline value", "{{ guideline.comparison }}"),
        ],
    )
    _tag(doc, "{%p if guideline.below %}")
    _para(
        doc,
        "The fair market value is below the guideline value by {{ guideline.difference }}; the reasons "
        "are given in the justification below.",
        bold=True,
    )
    _tag(doc, "{%p endif %}")
    _tag(doc, "{%p else %}")
    _para(doc, "No guideline rate was furnished for this property.", italic=True)
    _tag(doc, "{%p endif %}")

    doc.add_heading("7. Inspection", level=1)
    _key_values(
        doc,
        [
            ("Date of inspection", "{{ inspection.date }}"),
            ("Inspected by", "{{ inspection.inspector }}"),
        ],
    )
    _para(doc, "Remarks", bold=True)
    _lines(doc, "inspection.remarks", empty="No remarks.")

    doc.add_heading("8. Legal documents examined", level=1)
    _tag(doc, "{%p if legal %}")
    _loop_table(doc, ["Particular", "Reference"], "d in legal", ["{{ d.label }}", "{{ d.value }}"])
    _tag(doc, "{%p else %}")
    _para(doc, "No legal particulars were recorded.", italic=True)
    _tag(doc, "{%p endif %}")

    doc.add_heading("9. Justification", level=1)
    _lines(doc, "justification", empty="No justification was recorded.")
    if spec.large_value:
        doc.add_heading("10. Marketability and the valuer's notes", level=1)
        _lines(doc, "notes", empty="No further notes.")
    _tag(doc, "{%p if warnings %}")
    _para(doc, "Points noted by the valuation rules", bold=True)
    _tag(doc, "{%p for w in warnings %}")
    _para(doc, "{{ w }}", style="List Bullet")
    _tag(doc, "{%p endfor %}")
    _tag(doc, "{%p endif %}")

    doc.add_heading("Annexures", level=1)
    _tag(doc, "{%p if annexures %}")
    _loop_table(
        doc,
        ["#", "Kind", "Caption", "File"],
        "x in annexures",
        ["{{ x.n }}", "{{ x.kind }}", "{{ x.caption }}", "{{ x.filename }}"],
    )
    _tag(doc, "{%p else %}")
    _para(doc, "No annexures.", italic=True)
    _tag(doc, "{%p endif %}")
    _tag(doc, "{%p if enclosures %}")
    _para(doc, "Enclosures", bold=True)
    _tag(doc, "{%p for line in enclosures %}")
    _para(doc, "{{ line }}", style="List Bullet")
    _tag(doc, "{%p endfor %}")
    _tag(doc, "{%p endif %}")
    _tag(doc, "{%p if checklist %}")
    _para(doc, "Checklist", bold=True)
    _tag(doc, "{%p for line in checklist %}")
    _para(doc, "{{ line }}", style="List Bullet")
    _tag(doc, "{%p endfor %}")
    _tag(doc, "{%p endif %}")
    if not spec.large_value:
        _tag(doc, "{%p if notes %}")
        _para(doc, "Notes", bold=True)
        _tag(doc, "{%p for line in notes %}")
        _para(doc, "{{ line }}")
        _tag(doc, "{%p endfor %}")
        _tag(doc, "{%p endif %}")

    doc.add_heading("Declaration", level=1)
    for n, text in enumerate(spec.declarations, start=1):
        _para(doc, f"{n}. {text}")
    doc.add_paragraph()
    _key_values(
        doc,
        [
            ("Place", "{{ report.place }}"),
            ("Date", "{{ report.date }}"),
            ("Inspected by", "{{ inspection.inspector }}"),
            ("Signature of the valuer", ""),
        ],
    )
    return doc


def normalised(doc: Document) -> bytes:
    """The document's bytes with fixed zip entry times (python-docx writes the current time)."""
    raw = io.BytesIO()
    doc.save(raw)
    return normalise_zip(raw.getvalue())


def normalise_zip(data: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            entry = zipfile.ZipInfo(info.filename, date_time=ZIP_TIME)
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.external_attr = 0o644 << 16
            dst.writestr(entry, src.read(info.filename))
    return out.getvalue()


def templates() -> dict[str, bytes]:
    """File name → bytes of every template."""
    return {f"{spec.template_id}.docx": normalised(build(spec)) for spec in SPECS}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="fail (exit 1) when a committed template differs")
    parser.add_argument("--out", type=Path, default=TEMPLATES_DIR, help="where to write the templates")
    args = parser.parse_args(argv)
    stale = []
    for name, data in templates().items():
        path = args.out / name
        if args.check:
            if not path.exists() or path.read_bytes() != data:
                stale.append(name)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        print(f"wrote {path} ({len(data)} bytes)")
    if stale:
        print("templates out of date (run make_report_templates.py): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

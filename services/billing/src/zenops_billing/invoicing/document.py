"""The rendered GST tax invoice (PDF, fpdf2): supplier, recipient, number and dates, place of
supply, lines with SAC and the GST split, totals, round-off and the total in words.

Rendered at issue from the issued figures and stored with the invoice (invoice_documents);
the same invoice renders to the same bytes (the PDF's creation date is the issue time)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date, datetime

from fpdf import FPDF

from zenops_kit.india import STATES
from zenops_kit.money import format_paise

CONTENT_TYPE = "application/pdf"


@dataclass(frozen=True)
class DocLine:
    description: str
    sac: str
    quantity: str
    unit_price: int
    discount: int
    taxable: int
    cgst: int
    sgst: int
    igst: int
    total: int
    place_of_supply: str


@dataclass(frozen=True)
class InvoiceDoc:
    number: str
    invoice_date: date
    due_date: date | None
    issued_at: datetime
    supplier_name: str
    supplier_gstin: str
    supplier_state: str
    supplier_address: str
    recipient_name: str
    recipient_gstin: str
    recipient_address: str
    place_of_supply: str
    taxable: int
    cgst: int
    sgst: int
    igst: int
    round_off: int
    total: int
    total_in_words: str
    lines: list[DocLine] = field(default_factory=list)


def _t(value: str) -> str:
    """What the PDF's core font can print (Latin-1); the rupee sign is written "Rs."."""
    return (
        (value or "")
        .replace("₹", "Rs.")
        .replace("—", "-")
        .replace("–", "-")
        .encode("latin-1", "replace")
        .decode("latin-1")
    )


def _state(code: str) -> str:
    return f"{STATES.get(code, code)} ({code})" if code else ""


def filename(number: str) -> str:
    return "invoice-" + number.replace("/", "-") + ".pdf"


def render(doc: InvoiceDoc) -> tuple[bytes, str]:
    """(the PDF bytes, their sha256 hex)."""
    pdf = FPDF(orientation="P", unit="mm", format="A4")
    pdf.set_creation_date(doc.issued_at)
    pdf.set_title(_t(f"Tax invoice {doc.number}"))
    pdf.set_author(_t(doc.supplier_name))
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_page()
    width = pdf.w - pdf.l_margin - pdf.r_margin

    pdf.set_font("Helvetica", "B", 14)
    pdf.cell(width, 8, "TAX INVOICE", new_x="LMARGIN", new_y="NEXT", align="C")
    pdf.set_font("Helvetica", "B", 11)
    pdf.cell(width, 6, _t(doc.supplier_name), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 9)
    for text in (doc.supplier_address, f"GSTIN: {doc.supplier_gstin}", f"State: {_state(doc.supplier_state)}"):
        if text:
            pdf.multi_cell(width, 5, _t(text), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)

    pdf.set_font("Helvetica", "", 9)
    facts = [
        ("Invoice number", doc.number),
        ("Invoice date", doc.invoice_date.strftime("%d-%m-%Y")),
        ("Due date", doc.due_date.strftime("%d-%m-%Y") if doc.due_date else ""),
        ("Place of supply", _state(doc.place_of_supply)),
    ]
    for label, value in facts:
        pdf.cell(35, 5, _t(label + ":"))
        pdf.cell(width - 35, 5, _t(value), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    pdf.set_font("Helvetica", "B", 9)
    pdf.cell(width, 5, "Bill to", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 9)
    for text in (
        doc.recipient_name,
        doc.recipient_address,
        f"GSTIN: {doc.recipient_gstin}" if doc.recipient_gstin else "GSTIN: unregistered",
    ):
        if text:
            pdf.multi_cell(width, 5, _t(text), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)

    pdf.set_font("Helvetica", "", 7.5)
    headings = (
        "#",
        "Description",
        "SAC",
        "Qty",
        "Rate",
        "Disc.",
        "Taxable",
        "CGST 9%",
        "SGST 9%",
        "IGST 18%",
        "Total",
        "POS",
    )
    widths = (6, 44, 12, 9, 16, 12, 17, 14, 14, 15, 17, 10)
    with pdf.table(
        col_widths=widths,
        text_align=(
            "LEFT",
            "LEFT",
            "LEFT",
            "RIGHT",
            "RIGHT",
            "RIGHT",
            "RIGHT",
            "RIGHT",
            "RIGHT",
            "RIGHT",
            "RIGHT",
            "CENTER",
        ),
        line_height=4.5,
        first_row_as_headings=True,
    ) as table:
        table.row(headings)
        for n, line in enumerate(doc.lines, start=1):
            table.row(
                (
                    str(n),
                    _t(line.description),
                    line.sac,
                    line.quantity,
                    format_paise(line.unit_price),
                    format_paise(line.discount),
                    format_paise(line.taxable),
                    format_paise(line.cgst),
                    format_paise(line.sgst),
                    format_paise(line.igst),
                    format_paise(line.total),
                    line.place_of_supply,
                )
            )
    pdf.ln(3)

    pdf.set_font("Helvetica", "", 9)
    rows = [
        ("Taxable value", doc.taxable),
        ("CGST", doc.cgst),
        ("SGST", doc.sgst),
        ("IGST", doc.igst),
        ("Round-off", doc.round_off),
    ]
    for label, amount in rows:
        pdf.cell(width - 40, 5, _t(label), align="R")
        pdf.cell(40, 5, "Rs. " + format_paise(amount), align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "B", 10)
    pdf.cell(width - 40, 6, "Invoice total", align="R")
    pdf.cell(40, 6, "Rs. " + format_paise(doc.total), align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 9)
    pdf.ln(2)
    pdf.multi_cell(width, 5, _t("Amount in words: " + doc.total_in_words), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    pdf.set_font("Helvetica", "I", 8)
    pdf.multi_cell(
        width,
        4,
        _t(
            "Place of supply for services on immovable property is the state where the property "
            "is located (IGST Act s.12(3)). This is a computer-generated invoice."
        ),
        new_x="LMARGIN",
        new_y="NEXT",
    )
    content = bytes(pdf.output())
    return content, hashlib.sha256(content).hexdigest()

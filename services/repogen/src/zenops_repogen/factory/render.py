"""Rendering: a report template (docxtpl/Jinja tags in a .docx) filled with a report context,
and the PDF made from the result by LibreOffice when the machine has it.

- Templates are versioned files, `<TEMPLATE_ID>.docx`, shipped in the package
  (zenops_repogen/templates, built by services/repogen/scripts/make_report_templates.py) or
  read from `report_templates_dir`. A template file names its id and version in its document
  properties; a file that names another one is refused rather than rendered under a wrong
  version.
- Jinja runs with autoescape (a "&" in a borrower's name must not break the XML) and
  StrictUndefined (a tag the context does not fill is an error, never an empty blank in a
  bank's report).
- The DOCX is written with fixed zip entry times: the same context gives the same bytes, so
  a report's hash identifies its content.
- docxtpl is CPU work: `render_docx` runs it in a worker thread (asyncio.to_thread).
- The PDF: `soffice --headless --convert-to pdf` in a scratch directory with its own
  LibreOffice profile (parallel conversions do not share one), bounded by a timeout (the
  process group is killed). No converter, a failure or a timeout is a note on the job, never
  a failed render.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import shutil
import signal
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import jinja2
from docx import Document
from docxtpl import DocxTemplate

log = logging.getLogger("zenops.repogen.factory.render")

PACKAGED_TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
ZIP_TIME = (1980, 1, 1, 0, 0, 0)


class TemplateError(Exception):
    """The template cannot be used (missing, unreadable, another id or version)."""


def template_path(template_id: str, templates_dir: str = "") -> Path:
    root = Path(templates_dir) if templates_dir else PACKAGED_TEMPLATES
    return root / f"{template_id}.docx"


def _check_template(path: Path, template_id: str, version: int) -> None:
    if not path.is_file():
        raise TemplateError(f"report template {template_id} is missing ({path.name} not found)")
    try:
        props = Document(str(path)).core_properties
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same failure
        raise TemplateError(f"report template {path.name} cannot be read: {exc}") from exc
    if props.identifier != template_id or props.version != str(version):
        raise TemplateError(
            f"report template {path.name} is {props.identifier or '?'} version "
            f"{props.version or '?'}, not {template_id} version {version}"
        )


def _environment() -> jinja2.Environment:
    return jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=True)


def normalise_zip(data: bytes) -> bytes:
    """`data` (a .docx) re-zipped with fixed entry times, entries in their original order."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            entry = zipfile.ZipInfo(info.filename, date_time=ZIP_TIME)
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.external_attr = 0o644 << 16
            dst.writestr(entry, src.read(info.filename))
    return out.getvalue()


def render_docx_sync(path: Path, template_id: str, version: int, context: dict) -> bytes:
    _check_template(path, template_id, version)
    template = DocxTemplate(str(path))
    try:
        template.render(context, jinja_env=_environment(), autoescape=True)
    except jinja2.TemplateError as exc:
        raise TemplateError(f"report template {template_id} does not fit the report data: {exc}") from exc
    out = io.BytesIO()
    template.save(out)
    return normalise_zip(out.getvalue())


async def render_docx(template_id: str, version: int, context: dict, *, templates_dir: str = "") -> bytes:
    """The filled report (CPU work, in a worker thread)."""
    return await asyncio.to_thread(
        render_docx_sync, template_path(template_id, templates_dir), template_id, version, context
    )


# -- PDF --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PdfResult:
    pdf: bytes | None
    # Why there is no PDF ('' when there is one).
    note: str


def converter_path(converter: str) -> str | None:
    return shutil.which(converter) if converter else None


async def to_pdf(docx: bytes, *, converter: str = "soffice", limit_seconds: float = 120.0) -> PdfResult:
    """The PDF of `docx`, or a note saying why there is none."""
    executable = converter_path(converter)
    if executable is None:
        return PdfResult(
            None, f"no PDF converter on this machine ({converter or 'none'} is not on PATH); the DOCX is the report"
        )
    with tempfile.TemporaryDirectory(prefix="zenops-pdf-") as scratch:
        work = Path(scratch)
        source = work / "report.docx"
        source.write_bytes(docx)
        profile = (work / "profile").as_uri()
        proc = await asyncio.create_subprocess_exec(
            executable,
            f"-env:UserInstallation={profile}",
            "--headless",
            "--norestore",
            "--convert-to",
            "pdf",
            "--outdir",
            str(work),
            str(source),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            async with asyncio.timeout(limit_seconds):
                output, _ = await proc.communicate()
        except TimeoutError:
            _kill(proc)
            await proc.wait()
            return PdfResult(None, f"PDF conversion timed out after {limit_seconds:g} s; the DOCX is the report")
        except BaseException:
            _kill(proc)
            raise
        target = work / "report.pdf"
        if proc.returncode != 0 or not target.is_file() or target.stat().st_size == 0:
            detail = output.decode(errors="replace").strip().splitlines()[-1:] if output else []
            log.warning("PDF conversion failed", extra={"returncode": proc.returncode, "output": detail})
            return PdfResult(
                None,
                f"PDF conversion failed (exit {proc.returncode}"
                f"{': ' + detail[0][:200] if detail else ''}); the DOCX is the report",
            )
        return PdfResult(target.read_bytes(), "")


def _kill(proc: asyncio.subprocess.Process) -> None:
    """The converter and whatever it started (its own session: one process group)."""
    if proc.returncode is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

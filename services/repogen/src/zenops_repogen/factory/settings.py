"""The factory's settings (environment variables ZENOPS_*), mixed into RepogenSettings:
where artifacts are stored (the kit's StorageSettings, with repogen's own directory and
bucket), the report templates, the render queue's retries and the PDF converter."""

from __future__ import annotations

from zenops_kit.storage.settings import StorageSettings


class FactorySettings(StorageSettings):
    # Rendered reports and export bundles (local driver: this directory; S3: this bucket).
    storage_dir: str = ".data/artifacts"
    s3_bucket: str = "zenops-reports"

    # Where the report templates (<TEMPLATE_ID>.docx) are read from; empty: the versioned
    # templates shipped in the package (zenops_repogen/templates).
    report_templates_dir: str = ""

    # The render queue (consumer repogen-render): attempts per job before it is DEAD, the
    # wait before each retry (the last value repeats), and how long an attempt may run
    # without a heartbeat before JetStream redelivers it.
    render_max_attempts: int = 4
    render_backoff_seconds: tuple[float, ...] = (5.0, 30.0, 120.0)
    render_ack_wait_seconds: float = 60.0

    # PDF: LibreOffice's `soffice --headless --convert-to pdf` when it is on PATH (no PDF, and
    # a note on the job, when it is not); a conversion is abandoned after this many seconds.
    pdf_converter: str = "soffice"
    pdf_timeout_seconds: float = 120.0

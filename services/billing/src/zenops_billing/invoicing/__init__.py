"""GST service invoices: supplier settings, invoices (lines, issue with gapless numbering,
void, adjustments, credit notes, the rendered document), payments and payment proofs,
receivables. Use cases only: rules in domain/gst.py and domain/invoices.py, SQL in
store/invoices.py, the gRPC surface in api/invoicing.py."""

"""RPCs of documents and the local driver's signed URLs."""


class DocumentRpcs:
    """Mixed into OpsServicer (self.engine, self.runtime)."""

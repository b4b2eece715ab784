"""RPCs of the analytics overview."""


class AnalyticsRpcs:
    """Mixed into OpsServicer (self.engine, self.runtime)."""

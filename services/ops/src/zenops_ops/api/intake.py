"""RPCs of channel requests (partner intake) and GetBillingRefState."""


class IntakeRpcs:
    """Mixed into OpsServicer (self.engine, self.runtime)."""

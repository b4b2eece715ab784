"""RPCs of assignments and their lifecycle."""


class AssignmentRpcs:
    """Mixed into OpsServicer (self.engine, self.runtime)."""

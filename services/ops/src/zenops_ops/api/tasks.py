"""RPCs of tasks."""


class TaskRpcs:
    """Mixed into OpsServicer (self.engine, self.runtime)."""

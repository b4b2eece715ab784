"""RPCs of master data and channels."""


class MasterDataRpcs:
    """Mixed into OpsServicer (self.engine, self.runtime)."""

"""Administration use cases: tenants, users and roles, the audit trail."""

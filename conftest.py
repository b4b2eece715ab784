# Fixtures come from the zenops_devstack pytest plugin (registered by its entry point).

from zenops_kit.migrations import run_env

run_env()

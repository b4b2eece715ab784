"""Pure rules of repogen (no I/O): the work-order lifecycle, evidence kinds and order."""

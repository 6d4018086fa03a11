"""Assets, one module per table (the marts share one): find a table's code from its name."""

"""Built-in plugin: the `rubric` source (weighted criteria checked by programs or judges)."""

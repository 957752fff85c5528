"""Built-in plugin: the `test_cases` source (sandboxed execution of model-written code)."""

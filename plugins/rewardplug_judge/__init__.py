"""Built-in plugin: the `llm_judge` source (LLM-as-a-judge with uncertainty from repeated sampling)."""

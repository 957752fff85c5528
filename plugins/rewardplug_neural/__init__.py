"""Built-in plugin: the `neural_rm` and `embedding_similarity` sources (Monte Carlo dropout)."""

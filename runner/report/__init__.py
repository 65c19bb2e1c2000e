"""Output for people and pipelines: the offline review, graphs, step docs."""

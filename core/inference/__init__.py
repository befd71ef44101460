"""On-device inference: the model manager, the pipeline, results and their provenance."""

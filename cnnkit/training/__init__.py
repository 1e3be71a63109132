"""Training, evaluation and prediction on top of the engine: the run directory is the
contract between them (spec, config, weights, checkpoints, metrics)."""

"""Training: the fraud model from simulated traffic, its evaluation, and its signed artifact."""

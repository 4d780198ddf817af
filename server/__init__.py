"""EdgePlane control plane."""

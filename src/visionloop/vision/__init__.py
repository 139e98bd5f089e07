"""Computer vision without web or database: synthetic line, sources, pre-processing, detector."""

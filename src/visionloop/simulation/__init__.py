"""The closed loop, measured: the whole real system (server, worker, an edge agent on the
synthetic line) run on a fresh store with an oracle reviewer that knows each frame's ground truth
(``visionloop simulate``)."""

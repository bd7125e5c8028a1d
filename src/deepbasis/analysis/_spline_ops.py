"""Operation codes of a network read by :func:`deepbasis.analysis.spline_of` (a
``spline._Program``), shared by the NumPy propagation and the compiled one: a linear layer, a
ReLU, and the two ends of a residual block (its input is added to its output)."""

LINEAR, RELU, OPEN_SKIP, CLOSE_SKIP = 0, 1, 2, 3

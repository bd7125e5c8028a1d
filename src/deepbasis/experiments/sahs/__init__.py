"""Sahs et al. (2020, ICLR submission) "A functional characterization of randomly initialized
gradient descent in deep ReLU networks" and Sahs et al. (2022, Frontiers in AI) "Shallow
univariate ReLU networks as splines" — the spline view of ReLU networks: breakpoints,
delta-slopes, roughness, the loss surface and the gradient flow in spline coordinates."""

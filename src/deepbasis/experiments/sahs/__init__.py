"""Sahs, Pyle, Damaraju, Ortega Caro, Tavaslioglu, Lu, Anselmi, Patel: the spline view of ReLU
networks — "A functional characterization of randomly initialized gradient descent in deep ReLU
networks" (ICLR 2020 submission) and "Shallow univariate ReLU networks as splines" (Frontiers in
AI, 2022): breakpoints, delta-slopes, roughness, the loss surface and the gradient flow in spline
coordinates. One module per figure or table; ``_common`` holds the targets and the trainer."""

"""Wang, Crawford-Eng, Perdikaris (2021): "Enhancing the trainability and expressivity of deep
MLPs with globally orthogonal initialization" — variance flow, GO initialization, the empirical
NTK, the high-frequency benchmark and image regression. ``_common`` holds the initializers and
the training loop that several experiments share."""

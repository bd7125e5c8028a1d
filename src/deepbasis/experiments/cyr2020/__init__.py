"""Cyr, Gulian, Patel, D'Elia, Trask (2020): "Robust training and initialization of deep neural
networks: an adaptive basis viewpoint" — Box initialization and LSGD. One module per figure or
table; ``_common`` (1-D regression sweeps), ``_pinn`` (transport-PINN training) and ``_images``
(box images) are what several of them share."""

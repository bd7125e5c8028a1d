"""Milkert, Hyde, Laine: "Compelling ReLU Network Initialization and Training to Leverage
Exponential Scaling with Depth" (ICML 2025: "Compelling ReLU Networks to Exhibit Exponentially
Many Linear Regions at Initialization and During Training") — compositional width-4 networks
with 2^d pieces and two-stage training. Formulas and reference numbers:
``specs/compositional-networks.md``. ``_common`` holds the targets, the rows of Table 1 and
how one model of a row is trained."""

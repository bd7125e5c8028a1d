r"""Image regression (Wang, Crawford-Eng & Perdikaris 2021, §4 and App. C.4): fit RGB values as a
function of pixel coordinates from a fraction of the pixels, with the total-variation (TV)
regularizer of eq. C.2, and score the whole image by its SNR in dB.

The paper's 960 × 960 city photograph is not available. We use scikit-image's bundled
``astronaut`` photograph (``skimage.data.astronaut()``, 512 × 512 RGB, NASA public domain; rich
detail in the flag, the suit and the background), optionally resized with anti-aliasing to
``resolution × resolution``. scikit-image is an optional dependency: ``pip install
deepbasis[images]``.

Normalization as the paper (App. C): pixel coordinates and RGB values are both standardized to
zero mean and unit variance (per coordinate / channel) over the whole image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .._checks import GeneratorLike, as_generator, check_choice

PHOTOGRAPHS = ("astronaut", "coffee", "chelsea", "rocket")


def _skimage():
    try:
        import skimage.data
        import skimage.transform
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError(
            "image regression needs scikit-image for its bundled sample photographs; install it "
            "with `pip install deepbasis[images]` (or `pip install scikit-image`)"
        ) from None
    return skimage


def load_photograph(name: str = "astronaut", resolution: int | None = None) -> np.ndarray:
    """A photograph bundled with scikit-image as float64 (H, W, 3) in [0, 1].

    ``resolution`` resizes (with anti-aliasing) to ``resolution × resolution``; ``None`` keeps
    the native size (astronaut: 512 × 512).
    """
    check_choice("photograph", name, PHOTOGRAPHS)
    skimage = _skimage()
    image = getattr(skimage.data, name)().astype(np.float64) / 255.0  # (H, W, 3)
    if resolution is not None:
        if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 2:
            raise ValueError(f"resolution must be an integer >= 2 or None, got {resolution!r}")
        image = skimage.transform.resize(image, (resolution, resolution), order=1,
                                         anti_aliasing=True)
    return np.clip(image, 0.0, 1.0)


@dataclass
class ImageProblem:
    """An image as a regression problem on standardized coordinates.

    Attributes:
        image: (H, W, 3) in [0, 1].
        coords: (H·W, 2) standardized pixel coordinates, row-major (x = column fastest).
        values: (H·W, 3) standardized RGB values.
        value_mean, value_std: (3,) to map predictions back to [0, 1].
        train: indices (into ``coords``) of the sampled training pixels.
    """

    image: np.ndarray
    coords: torch.Tensor
    values: torch.Tensor
    value_mean: torch.Tensor
    value_std: torch.Tensor
    train: torch.Tensor

    @property
    def shape(self) -> tuple[int, int]:
        return self.image.shape[0], self.image.shape[1]

    def to_image(self, standardized: torch.Tensor) -> torch.Tensor:
        """Standardized predictions (H·W, 3) → an (H, W, 3) image, clipped to [0, 1]."""
        rgb = standardized * self.value_std + self.value_mean
        return rgb.reshape(*self.shape, 3).clamp(0.0, 1.0)

    def domain_points(self, n: int, generator: GeneratorLike = None) -> torch.Tensor:
        """``n`` points uniform in the box of the standardized coordinates (X² of eq. C.2)."""
        gen = as_generator(generator)
        lower, upper = self.coords.min(0).values, self.coords.max(0).values
        u = torch.rand(n, 2, generator=gen, dtype=torch.float64).to(self.coords)
        return lower + (upper - lower) * u


def image_problem(name: str = "astronaut", resolution: int | None = 128, *,
                  sample_ratio: float = 0.25, generator: GeneratorLike = 0,
                  dtype: torch.dtype = torch.float64) -> ImageProblem:
    """Build the regression problem: a random ``sample_ratio`` of the pixels for training."""
    if not (isinstance(sample_ratio, (int, float)) and 0 < sample_ratio <= 1):
        raise ValueError(f"sample_ratio must be in (0, 1], got {sample_ratio!r}")
    image = load_photograph(name, resolution)
    h, w, _ = image.shape
    rows, cols = torch.meshgrid(torch.arange(h, dtype=torch.float64),
                                torch.arange(w, dtype=torch.float64), indexing="ij")
    coords = torch.stack([cols.reshape(-1), rows.reshape(-1)], dim=1)  # (HW, 2): (x, y)
    coords = (coords - coords.mean(0)) / coords.std(0)
    values = torch.as_tensor(image.reshape(-1, 3), dtype=torch.float64)
    mean, std = values.mean(0), values.std(0)
    gen = as_generator(generator)
    count = max(1, round(sample_ratio * h * w))
    train = torch.randperm(h * w, generator=gen)[:count].sort().values
    return ImageProblem(image, coords.to(dtype), ((values - mean) / std).to(dtype),
                        mean.to(dtype), std.to(dtype), train)


def tv_regularizer(model: nn.Module, points: torch.Tensor) -> torch.Tensor:
    r"""Eq. C.2's regularizer without λ_r: :math:`\frac{1}{N_2}\sum_i \lVert J_f(x_i)\rVert_F^2`.

    The mean over ``points`` (N, d) of the squared Frobenius norm of the input–output Jacobian
    (m × d) of ``model``; differentiable in the parameters (double backward), so it can be added
    to a training loss.
    """
    points = points.detach().requires_grad_(True)
    out = model(points)  # (N, m)
    total = out.new_zeros(())
    for k in range(out.shape[1]):
        (grad,) = torch.autograd.grad(out[:, k].sum(), points, create_graph=True)  # (N, d)
        total = total + (grad * grad).sum()
    return total / points.shape[0]


def snr_db(prediction: torch.Tensor, target: torch.Tensor) -> float:
    r"""SNR in dB, :math:`10 \log_{10}(\lVert y\rVert^2 / \lVert y − \hat y\rVert^2)`.

    Computed on whatever scale it is given; the experiments use the [0, 1] pixel scale over the
    whole image (training pixels included, as the paper).
    """
    if prediction.shape != target.shape:
        raise ValueError(f"prediction {tuple(prediction.shape)} and target "
                         f"{tuple(target.shape)} must have the same shape")
    noise = float(((target - prediction) ** 2).sum())
    signal = float((target**2).sum())
    return math.inf if noise == 0 else 10.0 * math.log10(signal / noise)


__all__ = ["PHOTOGRAPHS", "ImageProblem", "image_problem", "load_photograph", "snr_db",
           "tv_regularizer"]

"""Pixel-to-unit mappings for an image on a square Chimera RBM (thesis Fig. 3.1).

Dumoulin et al., "On the Challenges of Physical Implementations of RBMs"
(AAAI 2014) place a ``2m × 2m`` image on the visible units of a square
Chimera ``C_m`` (``t = 4``): ``C_14`` holds a 28×28 MNIST digit. Visible
qubits are those of colour ``(i + j + u) mod 2 == 0`` (see
:mod:`physamp.topology.chimera`), so unit cell ``(i, j)`` has four visible
qubits ``(i, j, (i + j) mod 2, k)``, ``k = 0..3``; write ``k = 2a + b`` with
``a, b ∈ {0, 1}``. Pixel ``(r, c)`` of the image is pixel number
``p = r · 2m + c`` (row-major).

``"pixel_blocks"`` (the paper's mapping): cell ``(i, j)`` takes the 2×2 block
of rows ``2i..2i+1`` and columns ``2j..2j+1``; unit ``k = 2a + b`` gets
pixel ``(2i + a, 2j + b)``. A hidden unit of a cell sees the cell's 2×2
patch through the intra-cell couplers, plus one pixel in each of the two
neighbouring cells along its orientation through the inter-cell couplers.

``"extended_pixel_blocks"``: the paper's text was not available to us, so
this is our documented reading of "extended". Cells are grouped in 2×2
super-cells ``(I, J) = (i // 2, j // 2)``, each owning the 4×4 pixel block of
rows ``4I..4I+3`` and columns ``4J..4J+3``. With ``(di, dj) = (i mod 2,
j mod 2)`` the cell's unit ``k = 2a + b`` gets pixel::

    (r, c) = (4I + 2a + di, 4J + 2b + dj)

i.e. each cell samples its super-cell's 4×4 block with stride 2 at offset
``(di, dj)``. The four cells of a super-cell interleave, so each cell's pixels
spread over a 3×3 window (larger than 2×2) and neighbouring cells' hidden
units see overlapping image regions. Needs ``2m`` divisible by 4, i.e. ``m``
even (``m = 14``: 7×7 super-cells). It is a bijection (``(a, di) ↔ 2a + di``
runs over ``0..3`` once).

Permutation convention (:func:`pixel_mapping_permutation`): ``perm[p]`` is the
index, in the *default* visible order of :func:`~physamp.topology.chimera.chimera_rbm`
(visible qubits sorted by linear index), of the unit that carries pixel ``p``.
A topology built with ``pixel_mapping=name`` lists its visible qubits as
``default_visible[perm[p]]``, so its visible unit ``p`` *is* pixel ``p`` and
flattened images need no reordering. For a default-order topology use
:func:`pixels_to_units` / :func:`units_to_pixels`.
"""

from __future__ import annotations

import dwave.graphs as dg
import numpy as np
import torch

from physamp.topology.base import check_size

__all__ = [
    "PIXEL_MAPPINGS",
    "check_pixel_mapping",
    "pixel_cells",
    "pixel_mapping_permutation",
    "pixel_to_qubit",
    "pixels_to_units",
    "units_to_pixels",
]

PIXEL_MAPPINGS = ("pixel_blocks", "extended_pixel_blocks")


def check_pixel_mapping(name: str, m: int, n: int | None = None, t: int = 4) -> None:
    """Raise ``ValueError`` unless mapping ``name`` applies to Chimera ``C(m, n, t)``."""
    if name not in PIXEL_MAPPINGS:
        raise ValueError(f"unknown pixel mapping {name!r}; valid mappings: {', '.join(PIXEL_MAPPINGS)}")
    n = m if n is None else n
    if m != n:
        raise ValueError(f"pixel mapping {name!r} needs a square Chimera (m == n); got m={m}, n={n}")
    if t != 4:
        raise ValueError(f"pixel mapping {name!r} needs t=4 (four visible qubits per cell); got t={t}")
    if m % 2:
        raise ValueError(f"pixel mapping {name!r} needs an even m (image side 2m divisible by 4); got m={m}")


def pixel_cells(name: str, m: int) -> np.ndarray:
    """Chimera coordinates of the visible qubit carrying each pixel.

    Returns an int array of shape ``(4 m², 4)``: row ``p`` is ``(i, j, u, k)`` for
    pixel ``p`` of the row-major ``2m × 2m`` image.
    """
    m = check_size("m", m)
    check_pixel_mapping(name, m)
    side = 2 * m
    r, c = np.divmod(np.arange(side * side), side)
    if name == "pixel_blocks":
        i, a = np.divmod(r, 2)
        j, b = np.divmod(c, 2)
    else:  # extended_pixel_blocks: r = 4I + 2a + di
        big_i, rem_r = np.divmod(r, 4)
        big_j, rem_c = np.divmod(c, 4)
        a, di = np.divmod(rem_r, 2)
        b, dj = np.divmod(rem_c, 2)
        i, j = 2 * big_i + di, 2 * big_j + dj
    u = (i + j) % 2
    k = 2 * a + b
    return np.stack([i, j, u, k], axis=1)


def pixel_to_qubit(name: str, m: int) -> list[int]:
    """Linear Chimera qubit index (``dwave.graphs`` labels) carrying each pixel; length ``4 m²``."""
    coords = dg.chimera_coordinates(m, m, 4)
    return [int(coords.chimera_to_linear(tuple(int(x) for x in row))) for row in pixel_cells(name, m)]


def pixel_mapping_permutation(name: str, m: int) -> np.ndarray:
    """``perm`` of shape ``(4 m²,)``: ``perm[p]`` = default-order visible unit carrying pixel ``p``.

    The default visible order is the visible qubits of ``C_m`` sorted by linear
    index. ``perm`` is a permutation of ``0 .. 4m² - 1``.
    """
    qubits = pixel_to_qubit(name, m)
    default_visible = sorted(qubits)  # every visible qubit carries exactly one pixel
    position = {q: idx for idx, q in enumerate(default_visible)}
    return np.array([position[q] for q in qubits], dtype=np.int64)


def pixels_to_units(images: torch.Tensor | np.ndarray, perm: np.ndarray):
    """Reorder row-major images ``(..., 4m²)`` into default-order visible units ``(..., 4m²)``.

    ``units[..., perm[p]] = images[..., p]``; inverse of :func:`units_to_pixels`.
    """
    inverse = np.argsort(perm)
    if isinstance(images, torch.Tensor):
        return images[..., torch.as_tensor(inverse, device=images.device)]
    return np.asarray(images)[..., inverse]


def units_to_pixels(units: torch.Tensor | np.ndarray, perm: np.ndarray):
    """Reorder default-order visible units ``(..., 4m²)`` into row-major images ``(..., 4m²)``."""
    if isinstance(units, torch.Tensor):
        return units[..., torch.as_tensor(perm, device=units.device)]
    return np.asarray(units)[..., perm]

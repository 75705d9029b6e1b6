"""The experiments of thesis chapters 3 (physical RBMs), 5 (ALI) and 7 (style transfer).

One module per result; each states its protocol at the top and defines
``NAME``, ``PRESETS`` (``quick`` / ``full``), ``cells(preset)``, ``run_cell(cell)``
and ``report(rows, out_dir, preset_name)``. Run one with
``physamp experiment NAME --preset quick`` (see :mod:`physamp.experiments.runner`).
"""

EXPERIMENTS = {
    "noise-at-sampling": "physamp.experiments.noise_at_sampling",
    "trained-with-noise": "physamp.experiments.trained_with_noise",
    "noise-during-training": "physamp.experiments.noise_during_training",
    "magnitude-limit": "physamp.experiments.magnitude_limit",
    "noise-and-limit": "physamp.experiments.noise_and_limit",
    "removed-connections": "physamp.experiments.removed_connections",
    "chimera": "physamp.experiments.chimera",
    "sample-grids": "physamp.experiments.sample_grids",
    "modern-topologies": "physamp.experiments.modern_topologies",
    "ali-semi-supervised": "physamp.experiments.ali_semi_supervised",
    "ali-toy": "physamp.experiments.ali_toy",
    "style-n-vs-single": "physamp.experiments.style_n_vs_single",
    "style-add": "physamp.experiments.style_add",
    "style-interpolation": "physamp.experiments.style_interpolation",
    "beta-estimation": "physamp.experiments.beta_estimation",
    "quantum-negative-phase": "physamp.experiments.quantum_negative_phase",
}

__all__ = ["EXPERIMENTS"]

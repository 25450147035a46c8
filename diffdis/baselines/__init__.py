"""Baselines DiffDis is compared with, scored by the same eval code: the CLIP baseline (`clip_baseline`, a
CLIPModel that answers the eval harness like a DiffDis pipeline) and the Diffusion Classifier
(`diffusion_classifier`, Li et al. 2023, on DiffDis's own UNet)."""

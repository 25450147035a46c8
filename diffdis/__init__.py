"""diffdis: one latent-diffusion UNet that generates images from text and classifies / retrieves images by
diffusing a text query conditioned on the image (DiffDis, ICCV 2023)."""

__version__ = "0.1.0"

__all__ = ["__version__"]

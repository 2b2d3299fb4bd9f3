"""latent-lab core: the DCGAN model, checkpoints, datasets and UI-free exploration logic."""

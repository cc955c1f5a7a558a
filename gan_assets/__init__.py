"""Goodfellow's GAN tutorial as Dagster assets."""

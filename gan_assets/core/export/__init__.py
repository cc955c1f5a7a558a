"""The model leaves the pipeline: a checkpoint's sampler as a self-contained artifact (a `torch.export` program,
safetensors weights and a JSON card) that loads without this project."""

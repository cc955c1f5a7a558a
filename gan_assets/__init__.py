"""Goodfellow's GAN tutorial as Dagster assets.

Set before anything imports torch: idle OpenMP threads sleep (PASSIVE) instead of spinning on a core that
another process, or another training, needs (gan_assets/core/threads.py says why it matters).
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

"""The JAX backend: Flax (linen) models trained with optax, the step under ``jax.jit``.

Importing this package does not import jax; ``backends.jax.adapter`` does.
"""

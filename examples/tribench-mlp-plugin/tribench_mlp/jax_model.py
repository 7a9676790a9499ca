"""The mlp workload in JAX: a pure apply(params, inputs), float32 parameters, the compute dtype applied here."""

import jax
import jax.numpy as jnp

from tribench.plugins import BuildRequest, Parts
from tribench_mlp import layer_shapes


def init(key: jax.Array, size: str) -> list[tuple[jax.Array, jax.Array]]:
    params = []
    for index, (inputs, outputs) in enumerate(layer_shapes(size)):
        weight = jax.random.normal(jax.random.fold_in(key, index), (inputs, outputs)) * (2 / inputs) ** 0.5
        params.append((weight, jnp.zeros(outputs)))
    return params


def loss(logits: jax.Array, labels: jax.Array) -> jax.Array:
    log_probs = jax.nn.log_softmax(logits.astype(jnp.float32))
    return -jnp.take_along_axis(log_probs, labels[:, None], axis=1).mean()


def build(request: BuildRequest) -> Parts:
    dtype = jnp.dtype(request.compute_dtype)

    def apply(params, features):
        hidden = features.astype(dtype)
        for index, (weight, bias) in enumerate(params):
            hidden = hidden @ weight.astype(dtype) + bias.astype(dtype)
            if index < len(params) - 1:
                hidden = jax.nn.relu(hidden)
        return hidden

    key = jax.random.key(request.seed)
    config = request.config
    features = jax.random.normal(jax.random.fold_in(key, 100), (request.batch_size, config["features"]))
    labels = jax.random.randint(jax.random.fold_in(key, 101), (request.batch_size,), 0, config["classes"])
    return Parts(model=apply, inputs=features, targets=labels, loss=loss, params=init(key, request.size))

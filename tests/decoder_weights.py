"""One set of decoder weights in PyTorch's layout (a ``state_dict`` saved with numpy) loaded into the Flax, Keras
and Paddle decoders: kernels are PyTorch's Linear weights transposed; the names are each module's own
(``backends/*/decoder.py`` document them). Imported by the tests' per-framework subprocesses."""

from __future__ import annotations

from typing import Any

LINEAR = ("q", "k", "v", "o", "gate", "up", "down")


def flax_params(data: Any, layers: int) -> dict[str, Any]:
    """The Flax Decoder's ``params`` tree from PyTorch's weights (``data``: name -> array)."""
    import jax.numpy as jnp

    params: dict[str, Any] = {"embed": {"embedding": jnp.asarray(data["embed.weight"])},
                              "norm": {"scale": jnp.asarray(data["norm.weight"])}}
    for index in range(layers):
        prefix = f"blocks.{index}."
        params[f"block_{index}"] = {
            "attn_norm": {"scale": jnp.asarray(data[prefix + "attn_norm.weight"])},
            "mlp_norm": {"scale": jnp.asarray(data[prefix + "mlp_norm.weight"])},
            **{name: {"kernel": jnp.asarray(data[prefix + name + ".weight"].T)} for name in LINEAR}}
    return params


def assign_keras(model: Any, data: Any) -> None:
    """PyTorch's weights assigned to the Keras Decoder's variables."""
    model.embed.embeddings.assign(data["embed.weight"])
    model.norm.scale.assign(data["norm.weight"])
    for index, block in enumerate(model.blocks):
        prefix = f"blocks.{index}."
        block.attn_norm.scale.assign(data[prefix + "attn_norm.weight"])
        block.mlp_norm.scale.assign(data[prefix + "mlp_norm.weight"])
        for name in LINEAR:
            getattr(block, name).kernel.assign(data[prefix + name + ".weight"].T)


def assign_paddle(model: Any, data: Any) -> None:
    """PyTorch's weights set into the Paddle Decoder's parameters (the same names; Linear weights transposed)."""
    import numpy as np

    for name, parameter in model.named_parameters():
        value = data[name]
        if name.rsplit(".", 2)[-2] in LINEAR:
            value = value.T
        parameter.set_value(np.ascontiguousarray(value))

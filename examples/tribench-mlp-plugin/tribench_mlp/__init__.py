"""The ``mlp`` workload: ReLU dense layers over float features, softmax cross-entropy over classes.

No framework is imported here: tribench reads this module in its parent process to list the workload.
"""

from itertools import pairwise

from tribench.plugins import Workload

SIZES = {
    "tiny": {"features": 64, "hidden": 128, "layers": 2, "classes": 10},
    "small": {"features": 512, "hidden": 1024, "layers": 4, "classes": 100},
}


def layer_shapes(size: str) -> list[tuple[int, int]]:
    """(inputs, outputs) of every dense layer, the classifier last."""
    config = SIZES[size]
    widths = [config["features"]] + [config["hidden"]] * config["layers"] + [config["classes"]]
    return list(pairwise(widths))


def params(size: str) -> int:
    return sum(inputs * outputs + outputs for inputs, outputs in layer_shapes(size))


def forward_flops(size: str) -> int:
    """Per sample: a multiply-add of every weight counts 2 FLOPs."""
    return sum(2 * inputs * outputs for inputs, outputs in layer_shapes(size))


WORKLOAD = Workload(
    name="mlp",
    description="multilayer perceptron (example plugin): ReLU dense layers, softmax cross-entropy",
    sizes=SIZES,
    builders={"torch": "tribench_mlp.torch_model:build", "tensorflow": "tribench_mlp.keras_model:build",
              "jax": "tribench_mlp.jax_model:build", "paddle": "tribench_mlp.paddle_model:build"},
    params=params,
    forward_flops=forward_flops,
)

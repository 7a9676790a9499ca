"""The mlp workload in PaddlePaddle."""

import paddle
import paddle.nn.functional as F
from paddle import nn

from tribench.plugins import BuildRequest, Parts
from tribench_mlp import layer_shapes


def build(request: BuildRequest) -> Parts:
    layers: list[nn.Layer] = []
    for inputs, outputs in layer_shapes(request.size):
        layers += [nn.Linear(inputs, outputs), nn.ReLU()]
    model = nn.Sequential(*layers[:-1])  # no ReLU after the classifier
    paddle.seed(request.seed)
    config = request.config
    features = paddle.randn([request.batch_size, config["features"]])
    labels = paddle.randint(0, config["classes"], [request.batch_size])
    return Parts(model=model, inputs=features, targets=labels, loss=F.cross_entropy)

"""The mlp workload in PyTorch."""

import torch
import torch.nn.functional as F
from torch import nn

from tribench.plugins import BuildRequest, Parts
from tribench_mlp import layer_shapes


def build(request: BuildRequest) -> Parts:
    layers: list[nn.Module] = []
    for inputs, outputs in layer_shapes(request.size):
        layers += [nn.Linear(inputs, outputs), nn.ReLU()]
    model = nn.Sequential(*layers[:-1])  # no ReLU after the classifier
    generator = torch.Generator(device=request.device).manual_seed(request.seed)
    config = request.config
    features = torch.randn(request.batch_size, config["features"], generator=generator, device=request.device)
    labels = torch.randint(config["classes"], (request.batch_size,), generator=generator, device=request.device)
    return Parts(model=model, inputs=features, targets=labels, loss=F.cross_entropy)

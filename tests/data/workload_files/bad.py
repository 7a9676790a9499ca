"""Plugins with mistakes: each case of theirs is failed or skipped with one line; the others still run."""

from counted import torch_build  # a module beside the file: its folder is on sys.path (suites.plugins.load_file)

from tribench.plugins import Parts, Workload


def raising_build(request):
    raise ValueError("boom: the builder cannot build this")


def per_sample_loss_build(request):
    import torch.nn.functional as F

    parts = torch_build(request)
    return Parts(parts.model, parts.inputs, parts.targets,
                 loss=lambda logits, labels: F.cross_entropy(logits, labels, reduction="none"))


raising = Workload("raising", "a builder that raises", {"tiny": {}}, {"torch": raising_build})
per_sample = Workload("per-sample", "a loss per sample, not a scalar", {"tiny": {}}, {"torch": per_sample_loss_build})
torch_only = Workload("torch-only", "no TensorFlow or JAX builder", {"tiny": {}}, {"torch": torch_build})

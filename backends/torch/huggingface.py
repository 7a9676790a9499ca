"""Builds ``hf:<model>`` workloads (``suites.huggingface``) with Transformers, offline, from configurations.

``AutoConfig.for_model`` (or ``AutoConfig.from_pretrained`` on a local file) and
``AutoModelFor*.from_config`` give random weights; nothing is fetched. ``HF_HUB_OFFLINE`` is set
before Transformers is imported, so a code path that would reach the Hub fails instead of downloading.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from tribench.backends.base import CaseSkipped
from tribench.suites.huggingface import INSTALL
from tribench.suites.plugins import BuildRequest, Parts

_AUTO_CLASSES = {"masked-lm": "AutoModelForMaskedLM", "causal-lm": "AutoModelForCausalLM",
                 "seq2seq-lm": "AutoModelForSeq2SeqLM", "image-classification": "AutoModelForImageClassification"}


def _transformers():
    os.environ["HF_HUB_OFFLINE"] = "1"   # nothing may be downloaded at run time
    try:
        import transformers
    except ImportError as error:
        raise CaseSkipped(f"Hugging Face workloads need transformers ({error}); install with: {INSTALL}") from None
    return transformers


def make_config(settings: dict[str, Any]):
    """The model's configuration: the named model type's defaults (the published checkpoint) with the size's
    overrides, or a local file as written."""
    transformers = _transformers()
    if settings.get("config_file"):
        return transformers.AutoConfig.from_pretrained(str(Path(settings["config_file"]).parent))
    return transformers.AutoConfig.for_model(settings["model_type"], **settings["config"])


def task_of(config, task: str) -> str:
    """The task a configuration trains on: given, or (for a file) read from its ``architectures`` and shape."""
    if task != "auto":
        return task
    names = " ".join(getattr(config, "architectures", None) or [])
    if "ImageClassification" in names or hasattr(config, "num_channels") and hasattr(config, "image_size"):
        return "image-classification"
    if getattr(config, "is_encoder_decoder", False):
        return "seq2seq-lm"
    if "MaskedLM" in names or "ForPreTraining" in names:
        return "masked-lm"
    return "causal-lm"


def build_model(config, task: str) -> torch.nn.Module:
    return getattr(_transformers(), _AUTO_CLASSES[task]).from_config(config)


def _batch(config, task: str, request: BuildRequest, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Synthetic inputs (and ``labels`` to train: the model computes its own loss)."""
    where = {"generator": generator, "device": request.device}
    batch = request.batch_size
    if task == "image-classification":
        size = config.image_size
        pixels = torch.randn(batch, config.num_channels, size, size, **where)
        inputs = {"pixel_values": pixels}
        if request.mode == "train":
            inputs["labels"] = torch.randint(config.num_labels, (batch,), **where)
        return inputs
    seq = int(request.config["seq_len"])
    ids = torch.randint(config.vocab_size, (batch, seq), **where)
    inputs = {"input_ids": ids}
    if task == "seq2seq-lm":
        targets = torch.randint(config.vocab_size, (batch, seq), **where)
        if request.mode == "train":
            inputs["labels"] = targets          # shifted right into decoder_input_ids by the model
        else:
            inputs["decoder_input_ids"] = targets
    elif request.mode == "train":
        inputs["labels"] = torch.randint(config.vocab_size, (batch, seq), **where)
    return inputs


def own_loss(outputs: Any, targets: Any) -> torch.Tensor:
    """The model's own loss (it was given ``labels``)."""
    return outputs.loss


def build(request: BuildRequest) -> Parts:
    config = make_config(dict(request.config))
    task = task_of(config, request.config.get("task", "auto"))
    model = build_model(config, task)
    generator = torch.Generator(device=request.device).manual_seed(request.seed)
    return Parts(model=model, inputs=_batch(config, task, request, generator), loss=own_loss)

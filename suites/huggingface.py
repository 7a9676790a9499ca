"""Hugging Face models as workloads, offline: ``hf:bert``, ``hf:gpt2``, ``hf:t5`` or ``hf:<config.json>``.

The model is built from its configuration with random weights (``AutoModel*.from_config``); nothing
is downloaded, at any point. Training uses the model's own loss (``labels`` given) on synthetic token
ids (or pixels for a vision configuration); inference is the forward pass. Transformers 5 is
PyTorch-only, so the workloads have a PyTorch builder only (``backends.torch.huggingface``) and the
other backends skip them with that reason.

Sizes: ``standard`` is the published configuration (bert-base-uncased, gpt2, t5-small: the
Transformers defaults of ``BertConfig``, ``GPT2Config``, ``T5Config``); ``tiny`` and ``small`` shrink
it to the shapes of tribench's own transformer workload, for CPUs. A configuration file has the one
size ``standard``: the file as written. Parameter counts are the framework's (no analytic formula),
checked in the tests against the published sizes; FLOPs come from PyTorch's counter.
"""

from __future__ import annotations

from pathlib import Path

from tribench.core.errors import InvalidChoice, InvalidValue
from tribench.suites.plugins import Workload

PREFIX = "hf:"
BUILDER = "tribench.backends.torch.huggingface:build"
INSTALL = "pip install -e '.[huggingface]'"
PYTORCH_ONLY = "Transformers 5 builds PyTorch models only"

# Trainable parameters of the published checkpoints' architectures (the model as tribench builds it).
PUBLISHED_PARAMS = {
    "bert": ("bert-base-uncased with its masked-LM head (BertForMaskedLM; BertModel with pooler: "
             "109,482,240, the published 110M)", 109_514_298),
    "gpt2": ("gpt2 (GPT2LMHeadModel; the published 124M, head tied to the embeddings)", 124_439_808),
    "t5": ("t5-small (T5ForConditionalGeneration; the published 60M, head tied)", 60_506_624),
}

_SHRUNK = {
    "bert": ({"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 4, "intermediate_size": 256,
              "vocab_size": 1000, "max_position_embeddings": 64},
             {"num_hidden_layers": 4, "hidden_size": 256, "num_attention_heads": 4, "intermediate_size": 1024,
              "vocab_size": 8000, "max_position_embeddings": 128}),
    "gpt2": ({"n_layer": 2, "n_embd": 64, "n_head": 4, "vocab_size": 1000, "n_positions": 64},
             {"n_layer": 4, "n_embd": 256, "n_head": 4, "vocab_size": 8000, "n_positions": 128}),
    "t5": ({"num_layers": 2, "num_decoder_layers": 2, "d_model": 64, "d_kv": 16, "num_heads": 4, "d_ff": 256,
            "vocab_size": 1000},
           {"num_layers": 4, "num_decoder_layers": 4, "d_model": 256, "d_kv": 64, "num_heads": 4, "d_ff": 1024,
            "vocab_size": 8000}),
}
# What the published checkpoints' configurations set beyond the classes' defaults, and training needs: T5 shifts
# its labels right from decoder_start_token_id (t5-small's config.json: 0, the padding token).
_PUBLISHED_EXTRAS = {"t5": {"decoder_start_token_id": 0, "pad_token_id": 0}}
_TASKS = {"bert": "masked-lm", "gpt2": "causal-lm", "t5": "seq2seq-lm"}
_DESCRIPTIONS = {
    "bert": "Hugging Face BERT (encoder, masked-LM loss); standard = bert-base-uncased",
    "gpt2": "Hugging Face GPT-2 (decoder, causal-LM loss); standard = gpt2 (124M)",
    "t5": "Hugging Face T5 (encoder-decoder, seq2seq loss); standard = t5-small",
}


def is_reference(name: str) -> bool:
    return name.startswith(PREFIX)


def known_models() -> list[str]:
    return [PREFIX + model for model in _TASKS]


def _named_model(model: str) -> Workload:
    tiny, small = _SHRUNK[model]
    extras = _PUBLISHED_EXTRAS.get(model, {})
    sizes = {"tiny": {"model_type": model, "task": _TASKS[model], "config": {**extras, **tiny}, "seq_len": 32},
             "small": {"model_type": model, "task": _TASKS[model], "config": {**extras, **small}, "seq_len": 128},
             "standard": {"model_type": model, "task": _TASKS[model], "config": dict(extras), "seq_len": 128}}
    return Workload(PREFIX + model, _DESCRIPTIONS[model], sizes, {"torch": BUILDER},
                    tokens_per_sample_of=lambda size: sizes[size]["seq_len"],
                    origin="built in (suites.huggingface)", requires=("transformers",), install_hint=INSTALL,
                    unsupported_note=PYTORCH_ONLY)


def _config_file(reference: str) -> Workload:
    name = PREFIX + reference
    path = Path(reference).expanduser()
    path = path / "config.json" if path.is_dir() else path
    if not path.is_file():
        raise InvalidValue(f"workload {name}: no configuration at {path} (give hf:bert, hf:gpt2, hf:t5, or a "
                           "config.json file or a folder holding one)")
    sizes = {"standard": {"config_file": str(path.resolve()), "task": "auto", "config": {}, "seq_len": 128}}
    return Workload(name, f"Hugging Face model from {path}", sizes, {"torch": BUILDER},
                    tokens_per_sample_of=lambda size: sizes[size]["seq_len"],
                    origin=f"configuration file {path.resolve()}", requires=("transformers",),
                    install_hint=INSTALL, unsupported_note=PYTORCH_ONLY)


def workload(name: str) -> Workload:
    """The workload of ``hf:<model>``: a named model, or a configuration file (absolute or relative path)."""
    reference = name[len(PREFIX):]
    if reference in _TASKS:
        return _named_model(reference)
    if reference.endswith(".json") or "/" in reference or Path(reference).is_dir():
        return _config_file(reference)
    raise InvalidChoice("Hugging Face model", reference, list(_TASKS) + ["path/to/config.json"])

"""An analytic ESTIMATE of the bytes one step moves to and from device memory, for the roofline.

Only an estimate, labelled as such wherever it is shown; JAX/XLA's cost analysis ("bytes accessed",
recorded by ``--profile`` for jitted JAX steps) is preferred where a case has it. The model:

* activations: every conv / matmul / LSTM / attention output is written once and read once by
  the next layer in the forward pass (2 x its bytes); a training step also reads it again in the
  backward pass and writes and reads its gradient (6 x in all). Element-wise layers
  (activations, normalisation, pooling, residual adds) are taken as fused into their producer;
* parameters (fp32): inference reads them once (4 B each); a training step reads them in the
  forward and backward passes, writes their gradients, and Adam reads parameter, gradient and
  both moments and writes parameter and moments (4 + 4 + 4 + 16 + 12 = 40 B each);
* activations are in the case's precision (4 B for fp32, 2 B for bf16 / fp16).

A generate case's step is one request (``request_bytes``): the prefill moves the activations of a
forward pass over the prompt and reads the weights once; each of the N - 1 cached decode steps reads
every weight once and the KV cache so far (``decode_bytes_per_step``, at the cache's mean length).

Caches, recomputation and framework-specific fusion make real traffic differ; the estimate
places a case on the roofline's x-axis, it does not measure anything.
"""

from __future__ import annotations

import dataclasses

from tribench.suites import workloads
from tribench.suites.workloads import (
    ConvNetSpec,
    DecoderSpec,
    LSTMClassifierSpec,
    LSTMLanguageModelSpec,
    ResNetSpec,
    TransformerSpec,
    kv_cache_bytes,
)

ACTIVATION_BYTES = {"fp32": 4, "tf32": 4, "bf16": 2, "fp16": 2}
ACTIVATION_PASSES = {"infer": 2, "train": 6}
PARAM_BYTES = {"infer": 4, "train": 40}
SOURCE = ("analytic estimate (harness/traffic.py): layer outputs written and read once forward, "
          "3x that to train; fp32 parameters read once (inference) or 40 B each with Adam (training); a generate "
          "request: the prompt's prefill, then per decode step every parameter and the KV cache read once")


def _convnet(spec: ConvNetSpec) -> int:
    total, height, width = 0, spec.height, spec.width
    channels = spec.channels
    for filters, kernel, pool in spec.convs:
        height, width, channels = height - kernel + 1, width - kernel + 1, filters
        total += height * width * channels
        if pool:
            height, width = height // 2, width // 2
    return total + sum(spec.dense) + spec.classes


def _resnet(spec: ResNetSpec) -> int:
    return sum(height * width * cout for _, _, cout, height, width in workloads.resnet_conv_layers(spec)) + spec.classes


def _lstm_layers(timesteps: int, hidden: tuple[int, ...]) -> int:
    return sum(timesteps * 5 * units for units in hidden)   # four gates and the hidden state per step


def activation_elements_per_sample(spec: workloads.Architecture) -> int:
    """Output elements of every conv / matmul / LSTM / attention layer for one sample."""
    if isinstance(spec, ConvNetSpec):
        return _convnet(spec)
    if isinstance(spec, ResNetSpec):
        return _resnet(spec)
    if isinstance(spec, LSTMClassifierSpec):
        return _lstm_layers(spec.timesteps, spec.hidden) + spec.classes
    if isinstance(spec, LSTMLanguageModelSpec):
        layers = _lstm_layers(spec.timesteps, (spec.hidden,) * spec.layers)
        return spec.timesteps * (spec.embed + spec.vocab) + layers
    if isinstance(spec, TransformerSpec):
        s, d = spec.seq_len, spec.d_model
        block = s * d * 5 + spec.heads * s * s + s * spec.d_ff   # q, k, v, attention out, projection; scores; FFN
        return s * d + spec.layers * block + s * spec.vocab
    if isinstance(spec, DecoderSpec):
        s, d = spec.seq_len, spec.d_model
        # q, k, v, attention out, projection; scores; gate, up and their product; the block's two residual adds
        block = s * (3 * d + 2 * spec.kv_dim) + spec.heads * s * s + 3 * s * spec.d_ff + s * d
        return s * d + spec.layers * block + s * spec.vocab
    raise TypeError(f"unknown architecture {spec!r}")


def has_estimate(workload: str) -> bool:
    """Whether the bytes a step moves can be estimated: only a built-in workload has an architecture to count."""
    return workloads.is_builtin(workload)


def decode_bytes_per_step(spec: DecoderSpec, batch_size: int, prompt: int, new_tokens: int, precision: str) -> float:
    """One cached decode step: every (fp32) weight read once and the KV cache at its mean length over the request.

    Decode step i (1 .. N - 1) attends over ``prompt + i`` positions, so the cache read averages ``prompt + N / 2``
    positions."""
    mean_context = prompt + new_tokens / 2
    per_position = kv_cache_bytes(spec, batch_size, 1, ACTIVATION_BYTES.get(precision, 4))
    return float(workloads.param_count(spec) * PARAM_BYTES["infer"] + per_position * mean_context)


def request_bytes(spec: DecoderSpec, batch_size: int, prompt: int, new_tokens: int, precision: str) -> float:
    """One generate request: the prompt's prefill (a forward pass over ``prompt`` positions, the vocabulary head on
    the last one only, as the decoders run it) and N - 1 decode steps."""
    prefill_spec = dataclasses.replace(spec, seq_len=prompt)
    elements = activation_elements_per_sample(prefill_spec) - (prompt - 1) * spec.vocab
    prefill = (elements * batch_size * ACTIVATION_BYTES.get(precision, 4)
               * ACTIVATION_PASSES["infer"] + workloads.param_count(spec) * PARAM_BYTES["infer"])
    return float(prefill + max(new_tokens - 1, 0) * decode_bytes_per_step(spec, batch_size, prompt, new_tokens,
                                                                          precision))


def bytes_per_step(workload: str, size: str, mode: str, batch_size: int, precision: str,
                   prompt: int | None = None, new_tokens: int | None = None) -> float:
    """Estimated device-memory bytes one step reads and writes (see the module docstring); a generate step is one
    request of ``prompt`` and ``new_tokens``."""
    spec = workloads.get(workload).architecture(size)
    if mode == "generate":
        return request_bytes(spec, batch_size, prompt, new_tokens, precision)
    activations = activation_elements_per_sample(spec) * batch_size * ACTIVATION_BYTES.get(precision, 4)
    params = workloads.get(workload).expected_params(size)
    return float(activations * ACTIVATION_PASSES[mode] + params * PARAM_BYTES[mode])

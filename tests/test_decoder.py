"""The decoder workload: its analytic counts, and the three frameworks' models computing the same function
from the same weights (so they are the same network, not three similar ones)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import numpy as np

from tests.helpers import ROOT
from tribench.harness.results import load_run
from tribench.suites import workloads
from tribench.suites.workloads import decoder_forward_flops, forward_flops_per_sample, param_count

TINY = workloads.get("decoder").architecture("tiny")
QUICK = ("--processes", "1", "--min-time", "0.05", "--max-time", "0.3", "--sustained-time", "0", "--no-energy",
         "--idle-baseline", "0", "--min-steps", "3")


def test_the_sizes_have_their_stated_parameter_counts():
    decoder = workloads.get("decoder")
    assert decoder.expected_params("tiny") == 162_624
    assert decoder.expected_params("small") == 128_404_224           # GPT-2-small scale
    assert decoder.expected_params("standard") == 1_235_814_400      # Llama-3.2-1B, as published
    standard = decoder.architecture("standard")
    assert (standard.vocab, standard.d_model, standard.layers, standard.heads, standard.kv_heads, standard.d_ff,
            standard.rope_theta, standard.tie_embeddings) == (128_256, 2048, 16, 32, 8, 8192, 500_000.0, True)


def test_an_untied_head_adds_the_vocabulary_projection():
    untied = dataclasses.replace(TINY, tie_embeddings=False)
    assert param_count(untied) - param_count(TINY) == TINY.vocab * TINY.d_model


def test_forward_flops_count_projections_attention_mlp_and_head():
    s, d, kv, ff, v = TINY.seq_len, TINY.d_model, TINY.kv_dim, TINY.d_ff, TINY.vocab
    per_layer = 2 * s * d * (2 * d + 2 * kv) + 2 * 2 * s * s * d + 3 * 2 * s * d * ff
    assert forward_flops_per_sample(TINY) == TINY.layers * per_layer + 2 * s * d * v
    assert workloads.get("decoder").flops_per_step("tiny", "train", 4) == 3 * 4 * forward_flops_per_sample(TINY)


def test_a_cached_decode_step_attends_over_the_context_it_has():
    one = decoder_forward_flops(TINY, positions=1, context=100)
    d, kv, ff, v = TINY.d_model, TINY.kv_dim, TINY.d_ff, TINY.vocab
    assert one == TINY.layers * (2 * d * (2 * d + 2 * kv) + 2 * 2 * 100 * d + 3 * 2 * d * ff) + 2 * d * v
    assert decoder_forward_flops(TINY, TINY.seq_len) == forward_flops_per_sample(TINY)


# ---------------------------------------------------------------- one set of weights in three frameworks

EXPORT = """
import json, sys, numpy as np, torch
from tribench.backends.torch import models
from tribench.suites import workloads
torch.manual_seed(3)
model = models.build_model(workloads.get("decoder").architecture("tiny")).eval()
tokens = torch.randint(1000, (2, 32), generator=torch.Generator().manual_seed(5))
with torch.no_grad():
    logits = model(tokens)
np.savez(sys.argv[1], tokens=tokens.numpy(), logits=logits.numpy(),
         **{name: value.numpy() for name, value in model.state_dict().items()})
"""

JAX_FORWARD = """
import sys, numpy as np, jax, jax.numpy as jnp
from tests.decoder_weights import flax_params
from tribench.backends.jax import models
from tribench.suites import workloads
data = np.load(sys.argv[1])
spec = workloads.get("decoder").architecture("tiny")
params = flax_params(data, spec.layers)
model = models.build_model(spec)
assert jax.tree.structure(params) == jax.tree.structure(model.init(jax.random.key(0), data["tokens"])["params"])
np.save(sys.argv[2], np.asarray(model.apply({"params": params}, jnp.asarray(data["tokens"]))))
"""

KERAS_FORWARD = """
import os, sys, numpy as np
os.environ["KERAS_BACKEND"] = "tensorflow"
from tests.decoder_weights import assign_keras
from tribench.backends.tensorflow import models
from tribench.suites import workloads
data = np.load(sys.argv[1])
model = models.build_model(workloads.get("decoder").architecture("tiny"))
assign_keras(model, data)
np.save(sys.argv[2], np.asarray(model(data["tokens"])))
"""


def _python(code: str, *args: str) -> None:
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-3000:]


def test_the_same_weights_give_the_same_logits_in_pytorch_jax_and_tensorflow(tmp_path):
    """Each framework in its own process, as in a run: PyTorch's weights, transposed where the layouts differ,
    loaded into Flax and Keras; equal logits prove the same RoPE, grouped-query attention and RMSNorm."""
    weights = tmp_path / "weights.npz"
    _python(EXPORT, str(weights))
    _python(JAX_FORWARD, str(weights), str(tmp_path / "jax.npy"))
    _python(KERAS_FORWARD, str(weights), str(tmp_path / "keras.npy"))
    reference = np.load(weights)["logits"]
    for name in ("jax", "keras"):
        np.testing.assert_allclose(np.load(tmp_path / f"{name}.npy"), reference, rtol=1e-4, atol=1e-4,
                                   err_msg=name)


def test_the_tiny_decoder_trains_and_infers_in_every_backend(tmp_path):
    out = tmp_path / "run.json"
    done = subprocess.run([sys.executable, "-m", "tribench", "run", "--backend", "torch,tensorflow,jax", "--workload",
                           "decoder", "--mode", "train,infer", *QUICK, "-o", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    cases = load_run(out)["cases"]
    assert sorted((case["spec"]["backend"], case["spec"]["mode"], case["status"]) for case in cases) == sorted(
        (backend, mode, "ok") for backend in ("torch", "tensorflow", "jax") for mode in ("train", "infer"))
    for case in cases:
        assert case["metrics"]["params"]["value"] == case["workload"]["expected_params"] == 162_624
        assert case["workload"]["tokens_per_sample"] == 32
        assert case["metrics"]["token_throughput"]["value"] > 0

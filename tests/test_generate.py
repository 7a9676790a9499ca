"""The generate mode: greedy generation with a KV cache gives the same tokens in PyTorch, JAX and TensorFlow
from one set of weights; it runs through ``tribench run`` in every backend with TTFT, TPOT and the other
figures; bad axes are one line."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from tests.helpers import ROOT, tribench
from tribench.core.errors import InvalidValue
from tribench.core.spec import CaseSpec
from tribench.harness.results import load_run
from tribench.suites import Matrix, expand, workloads
from tribench.suites.workloads import generation_flops, kv_cache_bytes

BACKENDS = ["torch", "tensorflow", "jax", "paddle"]
PROMPT, NEW = 8, 12
QUICK = ("--processes", "2", "--min-time", "0.05", "--max-time", "0.3", "--no-energy", "--idle-baseline", "0",
         "--min-steps", "3")

# PyTorch's decoder with weights large enough that the blocks, not the tied embedding alone, choose each
# token (and every greedy choice wins by a clear margin, so float32 rounding cannot flip it), and its tokens.
EXPORT = f"""
import sys, numpy as np, torch
from tribench.backends.torch import generate
from tribench.core.spec import CaseSpec
from tribench.suites import workloads
spec = workloads.get("decoder").architecture("tiny")
case = CaseSpec("torch", "decoder", "tiny", "generate", 2, prompt={PROMPT}, new_tokens={NEW})
gen = generate.make_generator(spec, case, torch.device("cpu"), None, lambda: None)
torch.manual_seed(7)
with torch.no_grad():
    for name, weight in gen.model.named_parameters():
        if not name.endswith("norm.weight"):
            weight.normal_(0, 1.0 if name.startswith("embed") else 0.25)
tokens = gen.generate().numpy()
with torch.no_grad():   # the margins of the same choices, from full forward passes without a cache
    sequence, margins = gen.prompt, []
    for step in range(tokens.shape[1]):
        top = gen.model(sequence)[:, -1].topk(2, -1).values
        margins.append(float((top[:, 0] - top[:, 1]).min()))
        sequence = torch.cat([sequence, torch.as_tensor(tokens[:, step:step + 1])], 1)
np.savez(sys.argv[1], tokens=tokens, prompt=gen.prompt.numpy(), margins=np.array(margins),
         **{{name: value.numpy() for name, value in gen.model.state_dict().items()}})
"""

JAX = f"""
import sys, numpy as np, jax.numpy as jnp
from tests.decoder_weights import flax_params
from tribench.backends.jax import generate
from tribench.core.spec import CaseSpec
from tribench.suites import workloads
data = np.load(sys.argv[1])
spec = workloads.get("decoder").architecture("tiny")
case = CaseSpec("jax", "decoder", "tiny", "generate", 2, compile=sys.argv[3], prompt={PROMPT}, new_tokens={NEW})
session = generate.build_session(spec, case)
session._state = session._state._replace(params=flax_params(data, spec.layers))
session.prompt = jnp.asarray(data["prompt"])
np.save(sys.argv[2], session.step())
"""

TENSORFLOW = f"""
import os, sys, numpy as np
os.environ["KERAS_BACKEND"] = "tensorflow"
import tensorflow as tf
from tests.decoder_weights import assign_keras
from tribench.backends.tensorflow import backend
from tribench.core.spec import CaseSpec
data = np.load(sys.argv[1])
case = CaseSpec("tensorflow", "decoder", "tiny", "generate", 2, compile=sys.argv[3], prompt={PROMPT}, new_tokens={NEW})
session = backend.backend().build(case)
generator = session._step.__self__
assign_keras(generator.model, data)
generator.prompt = tf.constant(data["prompt"])
np.save(sys.argv[2], session.step())
"""


TORCH = f"""
import sys, numpy as np, torch
from tribench.backends.torch import generate
from tribench.core.spec import CaseSpec
from tribench.suites import workloads
data = np.load(sys.argv[1])
spec = workloads.get("decoder").architecture("tiny")
case = CaseSpec("torch", "decoder", "tiny", "generate", 2, compile=sys.argv[3], prompt={PROMPT}, new_tokens={NEW})
gen = generate.make_generator(spec, case, torch.device("cpu"), None, lambda: None)
gen.model.load_state_dict({{name: torch.as_tensor(data[name]) for name in gen.model.state_dict()}})
gen.prompt = torch.as_tensor(data["prompt"])
np.save(sys.argv[2], gen.generate().numpy())
"""

PADDLE = f"""
import sys, numpy as np, paddle
from tests.decoder_weights import assign_paddle
from tribench.backends.paddle import generate
from tribench.core.spec import CaseSpec
from tribench.suites import workloads
data = np.load(sys.argv[1])
spec = workloads.get("decoder").architecture("tiny")
case = CaseSpec("paddle", "decoder", "tiny", "generate", 2, compile=sys.argv[3], prompt={PROMPT}, new_tokens={NEW})
generator = generate.make_generator(spec, case, lambda: None)
assign_paddle(generator.model, data)
generator.prompt = paddle.to_tensor(data["prompt"])
np.save(sys.argv[2], generator.generate().numpy())
"""


def _python(code: str, *args: str) -> None:
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.fixture(scope="module")
def torch_tokens(tmp_path_factory):
    weights = tmp_path_factory.mktemp("weights") / "decoder.npz"
    _python(EXPORT, str(weights))
    return weights, np.load(weights)


def test_pytorch_s_cached_greedy_tokens_are_those_of_full_forward_passes(torch_tokens):
    _, data = torch_tokens
    assert data["tokens"].shape == (2, NEW)
    assert len({int(token) for token in data["tokens"].ravel()}) > NEW   # not one token repeated
    assert data["margins"].min() > 1e-3                                # no near-tie a rounding could flip


@pytest.mark.parametrize("framework, compile", [("torch", "compiled"), ("jax", "native"), ("jax", "op-by-op"),
                                                ("tensorflow", "native"), ("tensorflow", "compiled"),
                                                ("tensorflow", "op-by-op"), ("paddle", "native"),
                                                ("paddle", "compiled")])
def test_the_same_weights_generate_the_same_tokens_in_every_framework(torch_tokens, tmp_path, framework, compile):
    weights, data = torch_tokens
    out = tmp_path / "tokens.npy"
    _python({"torch": TORCH, "jax": JAX, "tensorflow": TENSORFLOW, "paddle": PADDLE}[framework], str(weights), str(out),
            compile)
    assert np.load(out).tolist() == data["tokens"].tolist()


def test_generate_runs_in_every_backend_with_its_figures(tmp_path):
    out = tmp_path / "run.json"
    done = tribench("run", "--backend", ",".join(BACKENDS), "--workload", "decoder", "--mode", "generate",
                    "--batch", "2", "--prompt", str(PROMPT), "--new-tokens", "6", *QUICK, "-o", str(out))
    assert done.returncode == 0, done.stderr
    cases = load_run(out)["cases"]
    assert sorted((case["id"], case["status"]) for case in cases) == sorted(
        (f"{backend}/decoder-tiny/generate/bs2/p{PROMPT}n6/fp32/native/cpu", "ok") for backend in BACKENDS)
    spec = workloads.get("decoder").architecture("tiny")
    prefill, decode = generation_flops(spec, PROMPT, 6)
    for case in cases:
        generation = case["metrics"]["generation"]
        assert case["workload"]["flops_per_step"]["value"] == 2 * (prefill + decode)
        assert case["workload"]["tokens_per_sample"] == 6
        for process in case["repeats"]:
            assert len(process["generation"]["ttft_s"]) == len(process["timing"]["samples_s"])
            assert all(len(request) == 5 for request in process["generation"]["tpot_s"])
        assert generation["ttft"]["value"] > 0 and generation["tpot"]["value"] > 0
        assert generation["ttft"]["processes"] == 2
        assert generation["decode_tokens_per_s"]["value"] == pytest.approx(2 / generation["tpot"]["value"])
        assert generation["prefill_tokens_per_s"]["value"] == pytest.approx(2 * PROMPT / generation["ttft"]["value"])
        assert generation["kv_cache"]["value"] == kv_cache_bytes(spec, 2, PROMPT + 6, 4)
        assert case["repeats"][0]["build"]["kv_cache"]["bytes"] == kv_cache_bytes(spec, 2, PROMPT + 6, 4)
    printed = " ".join(done.stdout.split())
    assert "generation: TTFT = prefill to the first token on the host" in printed  # the generation table's legend


def test_generation_flops_are_a_prefill_then_cached_decode_steps():
    spec = workloads.get("decoder").architecture("tiny")
    prefill, decode = generation_flops(spec, 4, 3)
    head = 2 * spec.d_model * spec.vocab
    assert prefill == workloads.decoder_forward_flops(spec, 4) - 3 * head
    assert decode == (workloads.decoder_forward_flops(spec, 1, 5) + workloads.decoder_forward_flops(spec, 1, 6))


def test_generate_cases_carry_their_prompt_and_new_tokens_in_the_id():
    specs = expand(Matrix(backends=("torch",), workloads=("cnn", "decoder"), modes=("infer", "generate"),
                          prompts=(16, 32), new_tokens=(8,)), BACKENDS)
    assert [spec.id for spec in specs] == [
        "torch/cnn-tiny/infer/bs32/fp32/native/auto", "torch/decoder-tiny/infer/bs32/fp32/native/auto",
        "torch/decoder-tiny/generate/bs32/p16n8/fp32/native/auto",
        "torch/decoder-tiny/generate/bs32/p32n8/fp32/native/auto"]
    assert CaseSpec.from_dict({k: v for k, v in specs[0].to_dict().items()
                               if k not in ("prompt", "new_tokens")}) == specs[0]   # older run files


@pytest.mark.parametrize("args, message", [
    (["--workload", "cnn", "--mode", "generate"],
     "error: mode generate needs a decoder workload (decoder); cnn cannot generate"),
    (["--workload", "decoder", "--mode", "generate", "--prompt", "500"],
     "error: prompt 500 + 128 new tokens = 628 positions; decoder-tiny holds 512 (lower --prompt or --new-tokens)"),
    (["--workload", "decoder", "--mode", "generate", "--new-tokens", "0"],
     "error: new tokens must be a whole number of at least 1, got '0'"),
])
def test_bad_generation_axes_are_one_line_and_exit_2(args, message, tmp_path):
    done = tribench("run", "--backend", "torch", *args, "-o", str(tmp_path / "run.json"))
    assert (done.returncode, done.stderr.strip()) == (2, message)


def test_prompt_lengths_are_checked_against_every_requested_size():
    with pytest.raises(InvalidValue, match="decoder-tiny holds 512"):
        expand(Matrix(backends=("torch",), workloads=("decoder",), sizes=("tiny", "small"), modes=("generate",),
                      prompts=(1000,), new_tokens=(24,)), BACKENDS)


def test_the_standard_decoder_is_skipped_on_a_cpu_with_its_reason_and_planned_on_accelerators():
    from tribench.backends.base import Availability
    from tribench.harness.planner import plan_case

    seen = Availability("torch", True, "2.13", devices=("cpu", "gpu"))
    cpu = plan_case(CaseSpec("torch", "decoder", "standard", "generate", 1, device="cpu", prompt=128,
                             new_tokens=128), seen)
    assert cpu.skip_reason == ("the standard decoder (1.24B parameters, Llama-3.2-1B shape) is written for GPUs "
                               "and TPUs: a CPU takes minutes per step; run it with --device gpu or tpu, or --size "
                               "small here")
    auto = plan_case(CaseSpec("torch", "decoder", "standard", "train", 1, device="auto"), seen)
    assert (auto.spec.device, auto.skip_reason) == ("gpu", None)
    cpu_only = plan_case(CaseSpec("jax", "decoder", "standard", "train", 1, device="auto"),
                         Availability("jax", True, "0.10", devices=("cpu",)))
    assert cpu_only.spec.device == "cpu" and cpu_only.skip_reason.startswith("the standard decoder")
    assert plan_case(CaseSpec("torch", "decoder", "small", "train", 1, device="cpu"), seen).skip_reason is None


def _generate_case(rng: np.random.Generator, ttft: float, tpot: float) -> dict:
    """A synthetic generate case (4 processes, 20 requests of 8 new tokens each), built by the harness's own
    aggregation (``tests.runfile_builder``)."""
    from tests import runfile_builder as rb

    repeats = []
    for index in range(4):
        first = rb.lognormal(rng, 20, ttft, 0.02)
        steps = [rb.lognormal(rng, 7, tpot, 0.02) for _ in range(20)]
        process = rb.repeat([f + sum(s) for f, s in zip(first, steps, strict=True)], index=index)
        process["generation"] = {"ttft_s": first, "tpot_s": steps, "source": "synthetic"}
        repeats.append(process)
    return rb.case(repeats, workload="decoder", mode="generate", batch_size=4, prompt=16, new_tokens=8)


def test_compare_judges_ttft_tpot_and_decode_tokens_per_s_like_the_step_times(tmp_path):
    from tests import runfile_builder as rb
    from tribench import api

    rng = np.random.default_rng(11)
    base = rb.write(tmp_path / "base.json", rb.run([_generate_case(rng, 0.010, 0.002)], "base"))
    head = rb.write(tmp_path / "head.json", rb.run([_generate_case(rng, 0.013, 0.002)], "head"))
    verdicts = {metric.metric: metric for metric in api.compare(base, head).cases[0].metrics}
    assert verdicts["ttft"].verdict == "regressed" and verdicts["ttft"].change == pytest.approx(0.3, abs=0.03)
    assert (verdicts["tpot"].verdict, verdicts["decode_tokens_per_s"].verdict) == ("unchanged", "unchanged")
    assert verdicts["ttft"].basis == "per-process median" and verdicts["ttft"].n_base == 4
    generation = load_run(head)["cases"][0]["metrics"]["generation"]
    figures = {name: figure for name, figure in generation.items() if isinstance(figure, dict)}
    assert all("source" in figure or "definition" in figure for figure in figures.values())
    unavailable = {name: figure["reason"] for name, figure in figures.items() if figure["value"] is None}
    assert unavailable == {"prefill_mfu": "no measured peaks", "decode_mfu": "no measured peaks",
                           "decode_bandwidth_fraction": "no measured peaks"}     # never 0: no peaks in this run
    assert generation["ttft"]["value"] == pytest.approx(0.013, rel=0.02)
    assert generation["decode_tokens_per_s"]["value"] == pytest.approx(4 / generation["tpot"]["value"])


def test_a_request_times_the_prefill_to_its_read_and_each_decode_step_to_its_read(monkeypatch):
    """``backends.greedy.timed_request``, which every backend's generate mode runs, on a fake clock: TTFT ends
    after the first token's read (the sync), each TPOT spans one decode and its read, positions follow the prompt."""
    from tribench.backends import greedy

    clock, calls = iter(range(100)), []
    monkeypatch.setattr(greedy.time, "perf_counter", lambda: float(next(clock)))

    def read(token):
        calls.append(("read", token))
        return f"host {token}"

    def decode(token, position):
        calls.append(("decode", token, position))
        return token + 1

    tokens, record = greedy.timed_request(lambda: 10, decode, read, prompt_length=5, new_tokens=4)
    assert tokens == ["host 10", "host 11", "host 12", "host 13"]
    assert calls == [("read", 10), ("decode", 10, 5), ("read", 11), ("decode", 11, 6), ("read", 12),
                     ("decode", 12, 7), ("read", 13)]
    assert record == {"ttft_s": 1.0, "tpot_s": [1.0, 1.0, 1.0]}

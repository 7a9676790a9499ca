"""The Paddle models (backends/paddle/models.py, decoder.py): parameter counts against the analytic ones, FLOPs
under Paddle's own counter, output shapes, training, weight parity with the PyTorch models, the decoder's
KV-cache generation, and that the modules import no other framework."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from tests.helpers import paddle_import

with paddle_import():  # without paddle's import-time OMP_NUM_THREADS=1 leaking into later tests
    import paddle
    import paddle.nn.functional as F

    from tribench.backends.paddle import decoder, flops, models

from tests.helpers import ROOT
from tribench.suites import workloads
from tribench.suites.workloads import LSTMClassifierSpec, LSTMLanguageModelSpec, ResNetSpec

WORKLOADS = ("cnn", "rnn", "transformer", "decoder")
SIZES = ("tiny", "small", "standard")
# Small specs of the architectures no tiny size has: ResNets of both block kinds and stems, an LSTM language
# model, and LSTMs of unequal widths (one nn.LSTM per layer)
MINI_BOTTLENECK = ResNetSpec(32, 32, 3, 10, "bottleneck", (1, 2), (8, 16), "imagenet", stem_width=8)
MINI_BASIC = ResNetSpec(16, 16, 3, 10, "basic", (1, 1), (8, 16), "cifar", stem_width=8)
MINI_LM = LSTMLanguageModelSpec(vocab=50, embed=16, hidden=24, layers=2, timesteps=8)
MINI_UNEVEN = LSTMClassifierSpec(timesteps=6, features=5, hidden=(12, 8), classes=3)
MINIS = {"bottleneck": MINI_BOTTLENECK, "basic": MINI_BASIC, "lm": MINI_LM, "uneven": MINI_UNEVEN}


def spec_of(name: str, size: str = "tiny"):
    return MINIS[name] if name in MINIS else workloads.get(name).architecture(size)


def build(spec) -> paddle.nn.Layer:
    paddle.seed(workloads.SEED)
    return models.build_model(spec)


def synthetic_batch(spec, batch: int) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, targets) as numpy, shaped as backends/torch/adapter.py's synthetic_batch."""
    rng = np.random.default_rng(workloads.SEED)
    if models.is_cnn(spec):
        images = rng.standard_normal((batch, spec.channels, spec.height, spec.width), dtype=np.float32)
        return images, rng.integers(spec.classes, size=batch)
    if isinstance(spec, LSTMClassifierSpec):
        sequences = rng.standard_normal((batch, spec.timesteps, spec.features), dtype=np.float32)
        return sequences, rng.integers(spec.classes, size=batch)
    if isinstance(spec, workloads.TransformerSpec):
        shape = (batch, spec.seq_len)
        return rng.integers(spec.vocab, size=shape), rng.integers(spec.vocab, size=shape)
    length = spec.timesteps if isinstance(spec, LSTMLanguageModelSpec) else spec.seq_len
    tokens = rng.integers(spec.vocab, size=(batch, length + 1))  # next-token prediction
    return tokens[:, :-1], tokens[:, 1:]


def cross_entropy(logits: paddle.Tensor, targets: paddle.Tensor) -> paddle.Tensor:
    return F.cross_entropy(logits.reshape([-1, logits.shape[-1]]), targets.reshape([-1]))


# ---------------------------------------------------------------- parameters


def _build_for_counting(spec) -> paddle.nn.Layer:
    """Under paddle.LazyGuard (parameters get shapes, no memory: the 1.24B decoder costs nothing), except the
    LSTMs: paddle.nn.LSTM's constructor coalesces its weights into one buffer (flatten_parameters), which
    fails on lazy parameters (ValueError from coalesce_tensor). Built for real, the standard LSTM language
    model is 37M parameters (0.15 GB, under a second)."""
    if isinstance(spec, LSTMClassifierSpec | LSTMLanguageModelSpec):
        return build(spec)
    with paddle.LazyGuard():
        return build(spec)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("workload", WORKLOADS)
def test_parameter_counts_match_the_analytic_count(workload, size):
    spec = spec_of(workload, size)
    model = _build_for_counting(spec)
    assert models.trainable_params(model) == workloads.param_count(spec, lstm_second_bias=True)
    assert models.trainable_params(model) == workloads.get(workload).expected_params(size, lstm_second_bias=True)
    assert {str(p.dtype) for p in model.parameters()} == {"paddle.float32"}


@pytest.mark.parametrize("name", list(MINIS))
def test_mini_architectures_count_their_parameters_exactly(name):
    spec = MINIS[name]
    assert models.trainable_params(build(spec)) == workloads.param_count(spec, lstm_second_bias=True)


def test_batchnorm_statistics_are_not_trainable_parameters():
    """Paddle keeps BatchNorm's running mean and variance as parameters with stop_gradient set."""
    model = build(MINI_BASIC)
    statistics = [p for name, p in model.named_parameters() if name.endswith(("_mean", "_variance"))]
    assert statistics and all(p.stop_gradient for p in statistics)
    everything = sum(int(p.numel()) for p in model.parameters())
    assert models.trainable_params(model) == everything - sum(int(p.numel()) for p in statistics)


@pytest.mark.parametrize("spec", [spec_of("rnn"), spec_of("rnn", "small"), MINI_UNEVEN],
                         ids=["tiny", "small", "uneven"])
def test_paddle_lstm_carries_two_biases_per_layer(spec):
    """Four tensors per layer, PyTorch's names and shapes: weight_ih [4h, in], weight_hh [4h, h], bias_ih and
    bias_hh [4h]: that is why Paddle counts with ``lstm_second_bias=True``."""
    model = build(spec)
    lstms = [layer for layer in model.sublayers() if isinstance(layer, paddle.nn.LSTM)]
    hidden = spec.hidden if isinstance(spec, LSTMClassifierSpec) else (spec.hidden,) * spec.layers
    assert sum(lstm.num_layers for lstm in lstms) == len(hidden)
    for lstm in lstms:
        shapes = {name: list(p.shape) for name, p in lstm.named_parameters()}
        assert len(shapes) == 4 * lstm.num_layers
        for layer in range(lstm.num_layers):
            h = lstm.hidden_size
            inputs = lstm.input_size if layer == 0 else h
            assert shapes[f"weight_ih_l{layer}"] == [4 * h, inputs] and shapes[f"weight_hh_l{layer}"] == [4 * h, h]
            assert shapes[f"bias_ih_l{layer}"] == shapes[f"bias_hh_l{layer}"] == [4 * h]


def test_build_model_refuses_an_unknown_architecture():
    with pytest.raises(TypeError, match="no paddle model"):
        models.build_model(object())


# ---------------------------------------------------------------- FLOPs under Paddle's counter


def counted_flops(model: paddle.nn.Layer, inputs: paddle.Tensor) -> int:
    """What ``paddle.flops`` counts (``backends.paddle.flops.counted_macs``: its per-layer functions), one forward
    pass in eval mode. Its own inputs are ``paddle.randn``: token models need integer inputs anyway."""
    model.eval()
    return flops.counted_macs(model, lambda: model(inputs))


def one_sample(spec) -> paddle.Tensor:
    """One sample: ``paddle.flops`` documents batch size 1 only."""
    return paddle.to_tensor(synthetic_batch(spec, 1)[0])


def test_convnet_flops_count_macs_and_the_conv_bias_adds():
    """Conv2D: output elements x (in channels x kernel area + 1 for the bias); Linear: in x out per sample (its
    bias not counted); ReLU, max-pool, flatten: 0. So 2 x counted = analytic + 2 x the convs' output elements."""
    spec = spec_of("cnn")
    height, width, bias_adds = spec.height, spec.width, 0
    for filters, kernel, pool in spec.convs:
        height, width = height - kernel + 1, width - kernel + 1
        bias_adds += filters * height * width
        height, width = (height // 2, width // 2) if pool else (height, width)
    assert 2 * counted_flops(build(spec), one_sample(spec)) == workloads.forward_flops_per_sample(spec) + 2 * bias_adds


@pytest.mark.parametrize("spec", [spec_of("cnn", "small"), MINI_BOTTLENECK, MINI_BASIC],
                         ids=["resnet18", "bottleneck", "basic"])
def test_resnet_flops_count_macs_and_batchnorm(spec):
    """Bias-free convs and the head count their multiply-adds; each BatchNorm2D (eval) counts 2 per element of
    its input, which is its conv's output; the functional ReLU and pooling count nothing. So 2 x counted =
    analytic + 4 x the output elements of every conv (``workloads.resnet_conv_layers``)."""
    outputs = sum(cout * height * width for _, _, cout, height, width in workloads.resnet_conv_layers(spec))
    assert 2 * counted_flops(build(spec), one_sample(spec)) == workloads.forward_flops_per_sample(spec) + 4 * outputs


@pytest.mark.parametrize("spec", [spec_of("rnn"), MINI_LM], ids=["tiny", "lm"])
def test_lstm_flops_count_only_the_head(spec):
    """paddle.nn.LSTM is not a leaf layer (its per-layer RNN wrappers are its children), it has no counting
    function, and its forward is one fused ``rnn`` op over its flat weights: the counter sees no LSTM FLOPs,
    only the dense head's multiply-adds."""
    if isinstance(spec, LSTMClassifierSpec):
        head = 2 * spec.hidden[-1] * spec.classes
    else:
        head = spec.timesteps * 2 * spec.hidden * spec.vocab
    assert 2 * counted_flops(build(spec), one_sample(spec)) == head
    assert workloads.forward_flops_per_sample(spec) > head


def test_transformer_flops_count_the_linear_layers_not_attention():
    """The q/k/v, out, FFN and head Linear layers count their multiply-adds; the score and value products
    inside F.scaled_dot_product_attention (a function, not a layer), LayerNorm and the embedding count nothing.
    So 2 x counted = analytic - the attention products, layers x 2 x 2 x seq^2 x d."""
    spec = spec_of("transformer")
    attention = spec.layers * 2 * 2 * spec.seq_len * spec.seq_len * spec.d_model
    assert 2 * counted_flops(build(spec), one_sample(spec)) == workloads.forward_flops_per_sample(spec) - attention


def test_decoder_flops_count_the_linear_layers_not_attention_nor_the_tied_head():
    """The q, k, v, o, gate, up and down Linear layers count their multiply-adds; attention's products (SDPA)
    and the tied head (a matmul with the embedding, not a Linear layer) count nothing, nor RMSNorm."""
    spec = spec_of("decoder")
    attention = spec.layers * 2 * 2 * spec.seq_len * spec.seq_len * spec.d_model
    head = 2 * spec.seq_len * spec.d_model * spec.vocab
    assert attention == workloads.decoder_forward_flops(spec, spec.seq_len) - workloads.decoder_forward_flops(
        spec, spec.seq_len, context=0)
    analytic = workloads.forward_flops_per_sample(spec)
    assert 2 * counted_flops(build(spec), one_sample(spec)) == analytic - attention - head


def test_paddle_flops_counts_what_the_helper_counts_where_it_runs():
    """paddle.flops itself: the helper's count wherever it returns; under NumPy >= 2.4 its summary table's int()
    of a 1-element tensor raises TypeError after counting (the reason for ``counted_flops``)."""
    spec = spec_of("cnn")
    model = build(spec)
    try:
        total = paddle.flops(model, [1, spec.channels, spec.height, spec.width])
    except TypeError as error:
        assert "0-dimensional" in str(error) and np.lib.NumpyVersion(np.__version__) >= "2.4.0"
    else:
        assert total == counted_flops(model, one_sample(spec))


# ---------------------------------------------------------------- outputs and training


@pytest.mark.parametrize(("workload", "shape"), [("cnn", [2, 10]), ("rnn", [2, 10]), ("transformer", [2, 32, 1000]),
                                                 ("decoder", [2, 32, 1000])])
def test_tiny_outputs_are_float32_logits_of_the_right_shape(workload, shape):
    inputs, targets = synthetic_batch(spec_of(workload), 2)
    logits = build(spec_of(workload))(paddle.to_tensor(inputs))
    assert list(logits.shape) == shape and logits.dtype == paddle.float32
    assert list(targets.shape) == shape[:-1]
    assert bool(paddle.isfinite(logits).all())


def test_lstm_language_model_predicts_every_next_token():
    """The small rnn: logits [batch, timesteps, vocab] against targets [batch, timesteps] (tokens shifted by one)."""
    spec = spec_of("rnn", "small")
    tokens, targets = synthetic_batch(spec, 2)
    assert tokens.shape == targets.shape == (2, spec.timesteps)
    logits = build(spec)(paddle.to_tensor(tokens))
    assert list(logits.shape) == [2, spec.timesteps, spec.vocab] and logits.dtype == paddle.float32
    assert np.isfinite(float(cross_entropy(logits, paddle.to_tensor(targets))))


@pytest.mark.filterwarnings("ignore:When training, we now always track:UserWarning")
@pytest.mark.parametrize("name", [*WORKLOADS, "bottleneck", "lm"])
def test_training_loss_drops_on_a_fixed_batch(name):
    spec = spec_of(name)
    model = build(spec)
    model.train()
    optimizer = paddle.optimizer.Adam(learning_rate=workloads.LEARNING_RATE, parameters=model.parameters())
    inputs, targets = (paddle.to_tensor(array) for array in synthetic_batch(spec, 8))
    losses = []
    for _ in range(10):
        loss = cross_entropy(model(inputs), targets)
        loss.backward()
        optimizer.step()
        optimizer.clear_grad()
        losses.append(float(loss))
    assert losses[-1] < losses[0], losses


# ---------------------------------------------------------------- parity with the PyTorch models

BN_STATISTICS = {"_mean": "running_mean", "_variance": "running_var"}


def load_torch_weights(paddle_model: paddle.nn.Layer, torch_model) -> set[str]:
    """Every Paddle parameter set from the PyTorch one of the same name (BatchNorm's statistics renamed, Linear
    weights transposed: Paddle's are [in, out]); returns the PyTorch entries left unused."""
    state = {name: tensor.detach().numpy() for name, tensor in torch_model.state_dict().items()}
    owners = dict(paddle_model.named_sublayers())
    used = set()
    for name, parameter in paddle_model.named_parameters():
        owner, _, leaf = name.rpartition(".")
        torch_name = f"{owner}.{BN_STATISTICS.get(leaf, leaf)}"
        value = state[torch_name]
        if isinstance(owners[owner], paddle.nn.Linear) and leaf == "weight":
            value = value.T
        assert list(parameter.shape) == list(value.shape), name
        parameter.set_value(np.ascontiguousarray(value))
        used.add(torch_name)
    return set(state) - used


def twin_models(spec):
    """(paddle model, torch model) with the torch weights loaded into the paddle one."""
    torch = pytest.importorskip("torch")
    from tribench.backends.torch import models as torch_models

    torch.manual_seed(workloads.SEED)
    torch_model = torch_models.build_model(spec)
    paddle_model = build(spec)
    unused = load_torch_weights(paddle_model, torch_model)
    assert {name.rpartition(".")[2] for name in unused} <= {"num_batches_tracked"}
    return paddle_model, torch_model


def both_logits(paddle_model, torch_model, inputs: np.ndarray, train: bool) -> tuple[np.ndarray, np.ndarray]:
    import torch

    paddle_model.train() if train else paddle_model.eval()
    torch_model.train(train)
    with torch.no_grad():
        expected = torch_model(torch.from_numpy(inputs)).numpy()
    with paddle.no_grad():
        return paddle_model(paddle.to_tensor(inputs)).numpy(), expected


@pytest.mark.filterwarnings("ignore:When training, we now always track:UserWarning")
@pytest.mark.parametrize("name", [*WORKLOADS, *MINIS])
def test_the_same_weights_give_pytorchs_logits(name):
    spec = spec_of(name)
    paddle_model, torch_model = twin_models(spec)
    inputs, _ = synthetic_batch(spec, 2)
    modes = (False, True) if models.is_cnn(spec) else (False,)  # train mode: BatchNorm's batch statistics
    for train in modes:
        got, expected = both_logits(paddle_model, torch_model, inputs, train)
        assert got.shape == expected.shape
        assert np.abs(expected).max() > 1e-2  # logits of substance, so atol means something
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)


def test_fixed_tables_equal_pytorchs():
    """The transformer's sinusoidal positions and the decoder's RoPE tables (buffers, not parameters)."""
    paddle_transformer, torch_transformer = twin_models(spec_of("transformer"))
    np.testing.assert_allclose(paddle_transformer.positions.numpy(), torch_transformer.positions.numpy(), atol=1e-6)
    paddle_decoder, torch_decoder = twin_models(spec_of("decoder"))
    for table in ("cos", "sin"):
        np.testing.assert_array_equal(getattr(paddle_decoder, table).numpy(), getattr(torch_decoder, table).numpy())
    assert {"positions", "cos", "sin"}.isdisjoint(
        name.rpartition(".")[2] for model in (paddle_transformer, paddle_decoder) for name in model.state_dict())


def test_decoder_weight_names_and_layout():
    spec = spec_of("decoder")
    shapes = {name: list(p.shape) for name, p in build(spec).named_parameters()}
    d, kv, ff = spec.d_model, spec.kv_dim, spec.d_ff
    assert shapes["embed.weight"] == [spec.vocab, d] and shapes["norm.weight"] == [d]
    block = {name.removeprefix("blocks.1."): shape for name, shape in shapes.items() if name.startswith("blocks.1.")}
    assert block == {
        "attn_norm.weight": [d], "q.weight": [d, d], "k.weight": [d, kv], "v.weight": [d, kv], "o.weight": [d, d],
        "mlp_norm.weight": [d], "gate.weight": [d, ff], "up.weight": [d, ff], "down.weight": [ff, d]}
    assert len(shapes) == 2 + 9 * spec.layers


def test_decoder_embedding_starts_at_llamas_scale():
    weight = build(spec_of("decoder", "small")).embed.weight.numpy()
    assert abs(weight.std() - decoder.EMBEDDING_STD) < 1e-3 and abs(weight.mean()) < 1e-3


# ---------------------------------------------------------------- the decoder's KV cache

PROMPT, TOTAL, CACHE = 8, 12, 16


def cached_logits(model, tokens: paddle.Tensor, cache: decoder.KVCache, static: bool, step=None) -> list[np.ndarray]:
    """Logits of a prefill of PROMPT tokens, then of each further token decoded one at a time."""
    step = step or (lambda chunk, start: decoder.forward_cached(model, chunk, cache, start, static))
    where = (lambda at: paddle.to_tensor(at, dtype="int64")) if static else (lambda at: at)
    with paddle.no_grad():
        logits = [step(tokens[:, :PROMPT], where(0))]
        logits += [step(tokens[:, at:at + 1], where(at)) for at in range(PROMPT, TOTAL)]
    return [array.numpy() for array in logits]


@pytest.mark.parametrize("static", [False, True], ids=["dynamic", "static"])
def test_cached_generation_gives_the_full_forwards_logits(static):
    spec = spec_of("decoder")
    model = build(spec)
    model.eval()
    tokens = paddle.to_tensor(synthetic_batch(spec, 2)[0][:, :TOTAL])
    with paddle.no_grad():
        full = model(tokens).numpy()
    cache = decoder.KVCache(spec, 2, CACHE, paddle.float32, None)
    got = cached_logits(model, tokens, cache, static)
    assert [array.shape for array in got] == [(2, spec.vocab)] * (TOTAL - PROMPT + 1)
    np.testing.assert_allclose(np.stack(got), full[:, PROMPT - 1:].transpose(1, 0, 2), rtol=0, atol=1e-5)
    assert list(cache.keys.shape) == [spec.layers, 2, CACHE, spec.kv_heads, spec.head_dim]
    written = cache.keys.abs().sum(axis=[0, 1, 3, 4]).numpy()
    assert (written[:TOTAL] > 0).all() and (written[TOTAL:] == 0).all()
    assert cache.nbytes == workloads.kv_cache_bytes(spec, 2, CACHE, 4)


@pytest.mark.filterwarnings("ignore:Tensor do not have:UserWarning")  # paddle's own SDPA code, traced
def test_a_static_decode_step_under_to_static_gives_the_same_logits():
    """paddle.jit.to_static in its default (SOT) mode keeps the cache writes in place: one traced step serves
    every position."""
    spec = spec_of("decoder")
    model = build(spec)
    model.eval()
    tokens = paddle.to_tensor(synthetic_batch(spec, 2)[0][:, :TOTAL])
    eager = cached_logits(model, tokens, decoder.KVCache(spec, 2, CACHE, paddle.float32, None), static=True)
    cache = decoder.KVCache(spec, 2, CACHE, paddle.float32, None)

    def step(chunk, start):
        return decoder.forward_cached(model, chunk, cache, start, True)

    traced = cached_logits(model, tokens, cache, static=True, step=paddle.jit.to_static(step))
    np.testing.assert_allclose(np.stack(traced), np.stack(eager), rtol=0, atol=1e-5)


def test_cached_logits_match_pytorchs_cached_decode():
    torch = pytest.importorskip("torch")
    from tribench.backends.torch import decoder as torch_decoder

    spec = spec_of("decoder")
    model, torch_model = twin_models(spec)
    model.eval()
    tokens = synthetic_batch(spec, 2)[0][:, :TOTAL]
    got = cached_logits(model, paddle.to_tensor(tokens), decoder.KVCache(spec, 2, CACHE, paddle.float32, None), False)
    cache = torch_decoder.KVCache(spec, 2, CACHE, torch.float32, torch.device("cpu"))
    chunks = [(tokens[:, :PROMPT], 0)] + [(tokens[:, at:at + 1], at) for at in range(PROMPT, TOTAL)]
    with torch.no_grad():
        torch_model.eval()
        expected = [torch_decoder.forward_cached(torch_model, torch.from_numpy(chunk), cache, start, False).numpy()
                    for chunk, start in chunks]
    np.testing.assert_allclose(np.stack(got), np.stack(expected), rtol=0, atol=1e-4)


def test_rope_tables_are_the_shared_ones():
    from tribench.backends import rope

    spec = spec_of("decoder")
    cos, sin = decoder.rope_tables(spec, 20)
    shared_cos, shared_sin = rope.rope_tables(spec, 20)
    assert cos.dtype == paddle.float32 and list(cos.shape) == [20, spec.head_dim]
    np.testing.assert_array_equal(cos.numpy(), shared_cos)
    np.testing.assert_array_equal(sin.numpy(), shared_sin)


# ---------------------------------------------------------------- imports

OTHER_FRAMEWORKS = ("torch", "jax", "jaxlib", "flax", "optax", "tensorflow", "keras")


def modules_after(statement: str) -> list[str]:
    code = f"import sys\n{statement}\nprint(','.join(sorted(m.split('.')[0] for m in sys.modules)))"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-W", "ignore", "-c", code], cwd=ROOT, env=env, capture_output=True,
                          text=True, check=True, timeout=120)
    return done.stdout.strip().splitlines()[-1].split(",")


def test_the_paddle_modules_import_no_other_framework():
    loaded = modules_after("import tribench.backends.paddle.models, tribench.backends.paddle.decoder")
    assert "paddle" in loaded
    assert [name for name in OTHER_FRAMEWORKS if name in loaded] == []


def test_the_paddle_package_imports_nothing():
    assert "paddle" not in modules_after("import tribench.backends.paddle")

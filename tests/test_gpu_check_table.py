"""The GPU check's table (benchmarks/gpu_check_table.py): what it shows per case, tested on hand-made run entries."""

from __future__ import annotations

from benchmarks.gpu_check_table import kernel_choice, rows


def process(fast_paths: dict) -> dict:
    return {"status": "ok", "build": {"fast_paths": fast_paths}}


def test_the_kernel_choice_is_a_transformers_attention_or_a_cnns_memory_format():
    attention = {"attention": {"implementation": "jax.nn.dot_product_attention (cudnn)", "rule": "r"},
                 "optimizer": {"implementation": "optax.adam fused by XLA in the jitted step", "rule": "r"}}
    assert kernel_choice({"repeats": [process(attention)]}) == "jax.nn.dot_product_attention (cudnn)"
    layout = {"memory_format": {"implementation": "channels_last", "rule": "r"}}
    assert kernel_choice({"repeats": [process(layout)]}) == "channels_last"
    assert kernel_choice({"repeats": [process({})]}) == "–"
    assert kernel_choice({"repeats": [{"status": "error"}]}) == "–"


def test_a_case_that_did_not_run_shows_its_reason_in_a_full_row():
    run = {"cases": [{"id": "jax-transformer-tiny", "status": "skipped", "error": "no gpu device visible to JAX"}]}
    assert rows(run, {}) == [["jax-transformer-tiny", "skipped", "no gpu device visible to JAX", "", "", "", "", "",
                              ""]]

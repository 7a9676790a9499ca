"""Environment capture: NVML through a fake module, fingerprints, git state."""

import types

import pytest

from tribench.harness import cpuinfo, environment


def fake_nvml(names=("NVIDIA H200",), fail_init=None):
    module = types.SimpleNamespace()
    module.shutdowns = 0

    def init():
        if fail_init:
            raise fail_init

    module.nvmlInit = init
    module.nvmlShutdown = lambda: setattr(module, "shutdowns", module.shutdowns + 1)
    module.nvmlDeviceGetCount = lambda: len(names)
    module.nvmlDeviceGetHandleByIndex = lambda index: index
    module.nvmlDeviceGetName = lambda handle: names[handle].encode()
    module.nvmlDeviceGetMemoryInfo = lambda handle: types.SimpleNamespace(total=141 * 2**30)
    module.nvmlSystemGetDriverVersion = lambda: "580.65.06"
    return module


def test_nvml_devices_are_listed_with_driver():
    nvml = fake_nvml(("NVIDIA H200", "NVIDIA H200"))
    info = environment.nvidia_gpus(nvml)
    assert info == {"available": True, "driver": "580.65.06", "devices": [
        {"index": 0, "name": "NVIDIA H200", "memory_total_bytes": 141 * 2**30},
        {"index": 1, "name": "NVIDIA H200", "memory_total_bytes": 141 * 2**30}]}
    assert nvml.shutdowns == 1


def test_nvml_that_cannot_load_says_why():
    info = environment.nvidia_gpus(fake_nvml(fail_init=OSError("NVML Shared Library Not Found")))
    assert info == {"available": False, "reason": "NVML unavailable: NVML Shared Library Not Found", "devices": []}


def test_fingerprint_ignores_hostname_but_not_framework_versions():
    env = environment.capture({"torch": {"version": "2.13.0"}})
    same = dict(env, machine=dict(env["machine"], hostname="elsewhere"))
    assert environment.fingerprint(environment.fingerprint_inputs(same)) == env["fingerprint"]
    newer = dict(env, frameworks={"torch": {"version": "2.14.0"}})
    assert environment.fingerprint(environment.fingerprint_inputs(newer)) != env["fingerprint"]
    threads = dict(env, env_vars={**env["env_vars"], "OMP_NUM_THREADS": "1"})
    assert environment.fingerprint(environment.fingerprint_inputs(threads)) != env["fingerprint"]


def test_capture_has_the_fields_runs_are_compared_by():
    env = environment.capture()
    assert env["machine"]["logical_cores"] >= 1
    assert env["machine"]["memory_total_bytes"] > 0
    assert env["python"]["version"].count(".") == 2
    assert len(env["fingerprint"]) == 16


def test_git_state_outside_a_checkout_says_so(tmp_path):
    assert environment.git_state(tmp_path) == {
        "commit": None, "reason": f"{tmp_path} is not a git checkout (or git is missing)"}


def test_relevant_env_vars_are_filtered():
    picked = environment.relevant_env_vars({"OMP_NUM_THREADS": "2", "HOME": "/root", "XLA_FLAGS": "--x"})
    assert picked == {"OMP_NUM_THREADS": "2", "XLA_FLAGS": "--x"}


@pytest.mark.parametrize("text, cores", [
    ("processor: 0\nphysical id: 0\ncore id: 0\n\nprocessor: 1\nphysical id: 0\ncore id: 0\n", 1),
    ("processor: 0\nphysical id: 0\ncore id: 0\n\nprocessor: 1\nphysical id: 1\ncore id: 0\n", 2),
])
def test_physical_cores_count_hyperthreads_once(text, cores):
    assert cpuinfo.physical_cores(text) == cores


def test_cpu_flags_and_model_from_x86_and_arm_text():
    x86 = "processor\t: 0\nmodel name\t: AMD EPYC 9654\nflags\t\t: fpu avx2 avx512_bf16\n"
    assert cpuinfo.parse_flags(x86) == {"fpu", "avx2", "avx512_bf16"}
    assert cpuinfo.parse_model(x86) == "AMD EPYC 9654"
    assert cpuinfo.parse_flags("Features\t: fp asimd asimdhp bf16\n") == {"fp", "asimd", "asimdhp", "bf16"}
    assert cpuinfo.parse_model("Features\t: fp\n") is None
    assert cpuinfo.parse_flags("") == frozenset()


def test_one_low_precision_rule_for_every_backend():
    bf16_only = frozenset({"avx512_bf16"})
    assert cpuinfo.low_precision_skip_reason("fp32", frozenset(), "torch") is None
    assert cpuinfo.low_precision_skip_reason("bf16", bf16_only, "torch") is None
    assert cpuinfo.low_precision_skip_reason("fp16", bf16_only, "XLA:CPU") == (
        "this CPU has no fp16 instructions (none of amx_fp16, asimdhp, avx512_fp16, fphp); "
        "XLA:CPU would convert every fp16 op to fp32 and back")
    assert cpuinfo.low_precision_skip_reason("fp16", frozenset({"asimdhp"}), "torch") is None

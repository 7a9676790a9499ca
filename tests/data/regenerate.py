"""Regenerate the checked-in run files the report tests read (``python tests/data/regenerate.py``).

Every file is written by ``tribench run`` itself (real PyTorch/JAX tiny cases and the fake
backend), then trimmed to stay small: at most ``KEEP_SAMPLES`` measured and ``KEEP_WARMUP``
warm-up samples per process, with the case metrics re-derived from what is kept (so every
summary in the file still follows from its samples). ``run-malicious.json`` is the fake-backend
run with hostile strings planted in every field a report shows. The numbers differ on each
regeneration; the golden tests read them from these files, so update their expected values too.
Run it on a quiet machine: a busy one gives noisy cases with too few steps. The checked-in
run-sweep.json was written before tribench measured energy (it has no ``energy`` entries), which
keeps such older run files covered by the report tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))

from tribench.core.spec import CaseSpec  # noqa: E402
from tribench.harness.aggregate import case_metrics, case_status  # noqa: E402
from tribench.harness.distributed import merge_ranks  # noqa: E402
from tribench.harness.distributed_metrics import add_scaling  # noqa: E402

KEEP_SAMPLES = 120
KEEP_WARMUP = 10
FAST = ["--size", "tiny", "--min-time", "0.5", "--max-time", "1", "--tag", "purpose=report-tests"]
XSS = "<script>alert(1)</script>"
BREAKOUT = '"><img src=x onerror=alert(1)>'
MARKDOWN = "| *bold* `tick` [x](javascript:alert(1)) _u_ # !"


def tribench(output: str, *args: str, **env: str) -> Path:
    path = HERE / output
    command = [sys.executable, "-m", "tribench", "run", *args, "--output", str(path)]
    subprocess.run(command, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), **env}, check=True)
    return path


def _trim_timing(result: dict, keep: int = KEEP_SAMPLES) -> None:
    timing = result.get("timing")
    if timing:
        timing["samples_s"] = timing["samples_s"][:keep]
        timing["warmup_samples_s"] = timing["warmup_samples_s"][:KEEP_WARMUP]
    generation = result.get("generation")
    if generation:  # one TTFT and one list of decode steps per measured request: the same requests as the samples
        generation["ttft_s"] = generation["ttft_s"][:keep]
        generation["tpot_s"] = generation["tpot_s"][:keep]


def _trim_ranks(repeat: dict) -> None:
    """A data-parallel repeat: trim every rank, then merge the ranks again (slowest rank from what is kept)."""
    for rank in repeat["ranks"]:
        _trim_timing(rank)
    if repeat.get("status") == "ok":
        repeat.update(merge_ranks(repeat["ranks"]))


def trim(path: Path, keep: int = KEEP_SAMPLES) -> dict:
    data = json.loads(path.read_text())
    for case in data["cases"]:
        for repeat in case.get("repeats", []):
            _trim_timing(repeat, keep)
            if repeat.get("ranks"):
                _trim_ranks(repeat)
        if case.get("repeats"):
            case["status"], case["error"] = case_status(case["repeats"])
            case["metrics"] = case_metrics(CaseSpec.from_dict(case["spec"]), case["repeats"], data.get("environment"))
    if any(CaseSpec.from_dict(case["spec"]).total_devices > 1 for case in data["cases"]):
        add_scaling(data["cases"], "--scaling" in (data.get("command") or []))  # from the re-derived throughputs
    path.write_text(json.dumps(data, indent=1) + "\n")
    return data


def poison(data: dict) -> dict:
    """Plant hostile strings wherever a report shows text from the run file."""
    data["run_id"] = f"evil-{XSS}"
    data["tags"] = {XSS: BREAKOUT, "note": MARKDOWN}
    data["command"] = ["tribench", "run", BREAKOUT]
    env = data["environment"]
    env["machine"]["hostname"] = f"host{BREAKOUT}"
    env["machine"]["cpu_model"] = f"cpu {MARKDOWN}"
    env["env_vars"] = {"OMP_NUM_THREADS": XSS, "XLA_FLAGS": MARKDOWN}
    env["git"]["branch"] = BREAKOUT
    env["fingerprint"] = f"fp{XSS}"
    for info in env["frameworks"].values():
        info["version"] = f"1.0{BREAKOUT}"
    for index, case in enumerate(data["cases"]):
        case["spec"]["backend"] = f"fake{XSS}"
        case["spec"]["precision"] = f"fp32{BREAKOUT}"
        case["id"] = f"{case['id']}/{MARKDOWN}/{index}"
        if case["status"] != "ok":
            case["error"] = f"{XSS} {BREAKOUT} {MARKDOWN}\nsecond line </pre></td></table>"
        for reading in (case.get("metrics") or {}).get("memory", []):
            reading["source"] = f"{reading['source']} {XSS}"
    return data


FAKE = {"TRIBENCH_EXTRA_BACKENDS": "fake=tests.fakes.backend"}


def sweep() -> None:
    tribench("run-sweep.json", "--backend", "torch,jax", "--workload", "cnn,transformer", "--mode", "train,infer",
             "--batch", "8,32", *FAST, "--min-steps", "20", "--max-time", "2.5")  # enough steps for every CI
    trim(HERE / "run-sweep.json")


def problems() -> None:
    tribench("run-problems.json", "--backend", "fake,torch", "--workload", "cnn,rnn,transformer", "--mode", "infer",
             "--precision", "fp32,fp16", "--timeout", "20", *FAST,
             FAKE_BACKEND_BEHAVIOUR="cnn=raise,rnn=hang,transformer=skip", **FAKE)
    trim(HERE / "run-problems.json")


def fingerprints() -> None:
    """The same cases twice; the second with OMP_NUM_THREADS=1, which is part of the fingerprint."""
    tribench("run-fingerprint-a.json", "--backend", "torch", "--workload", "cnn", "--mode", "train,infer", *FAST)
    trim(HERE / "run-fingerprint-a.json")
    tribench("run-fingerprint-b.json", "--backend", "torch", "--workload", "cnn", "--mode", "train,infer", *FAST,
             OMP_NUM_THREADS="1")
    trim(HERE / "run-fingerprint-b.json")


def malicious() -> None:
    path = tribench("run-malicious.json", "--backend", "fake", "--workload", "cnn,rnn,transformer", "--mode",
                    "infer", *FAST, FAKE_BACKEND_BEHAVIOUR="rnn=raise,transformer=skip", **FAKE)
    path.write_text(json.dumps(poison(trim(path)), indent=1) + "\n")


def scaling() -> None:
    """Data-parallel cases at 1 and 2 devices of each point (``--scaling``): the report's scale-out chart."""
    tribench("run-scaling.json", "--backend", "torch,jax,tensorflow", "--workload", "cnn", "--mode", "train,infer",
             "--batch", "4", "--devices", "2", "--scaling", "--no-energy", "--idle-baseline", "0", *FAST)
    trim(HERE / "run-scaling.json")


def generation() -> None:
    """The decoder's generate cases in every backend at two batch sizes, with measured peaks (so MFU and decode
    bandwidth have a figure): the report's generation section."""
    tribench("run-generate.json", "--backend", "torch,jax,tensorflow", "--workload", "decoder", "--mode",
             "generate", "--batch", "1,4", "--prompt", "16", "--new-tokens", "8", "--processes", "2",
             "--measure-peak", "--no-energy", "--idle-baseline", "0", *FAST)
    trim(HERE / "run-generate.json", keep=24)  # requests per process: each holds its decode steps too


STEPS = {"sweep": sweep, "problems": problems, "fingerprints": fingerprints, "malicious": malicious,
         "scaling": scaling, "generation": generation}


def main(names: list[str]) -> None:
    for name in names or list(STEPS):
        STEPS[name]()


if __name__ == "__main__":
    main(sys.argv[1:])  # e.g. `python tests/data/regenerate.py malicious`; no argument: all of them

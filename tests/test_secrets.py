"""Nothing secret leaves the machine: environment capture by name, scrubbed texts, the audit, --redact."""

import json
import os
import platform
import re
from pathlib import Path

import pytest

from tests.helpers import ROOT, fake_env, tribench
from tribench.harness import env_capture
from tribench.harness.redaction import REDACTED, credential_value_reason, scrub, secret_name_reason
from tribench.harness.results import load_run
from tribench.reports.share_safe import host_placeholder, redact_run

PLANTED = {
    "TF_TOKEN_app_terraform_io": "s3cr3t-demo-terraform",
    "TF_VAR_db_password": "hunter2-hunter2",
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
    "HF_TOKEN": "hf_QwErTyUiOpAsDfGhJkLzXcVbNm1234567890",
    "GITHUB_TOKEN": "ghp_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8",
    "DATABASE_URL": "postgres://bench:pa55-w0rd-9@db.internal.example/results",
    "NCCL_IB_TOKEN": "nccl-secret-value-77",  # a captured prefix, a secret name
    "KERAS_HOME_KEY": "keras-secret-value-88",
}
PLANTED_VALUES = ["s3cr3t-demo-terraform", "hunter2-hunter2", "wJalrXUtnFEMI", "AKIAIOSFODNN7EXAMPLE",
                  "hf_QwErTyUiOpAsDfGhJkLzXcVbNm1234567890", "ghp_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8",
                  "pa55-w0rd-9", "nccl-secret-value-77", "keras-secret-value-88",
                  "hf_TagTokenZxCvBnMaSdFgHjKl0987654321", "tag-password-value-5"]
TAGS = ["--tag", "hf_token=hf_TagTokenZxCvBnMaSdFgHjKl0987654321", "--tag", "db_password=tag-password-value-5",
        "--tag", "commit=0123456789abcdef0123456789abcdef01234567"]


# ---- rules -------------------------------------------------------------------------------------------

def test_variables_are_captured_by_name_and_secrets_never_are():
    captured = env_capture.capture({
        **PLANTED, "OMP_NUM_THREADS": "1", "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false",
        "NCCL_SOCKET_IFNAME": "eth0", "TF_ENABLE_ONEDNN_OPTS": "0", "TORCHINDUCTOR_FREEZING": "1",
        "TF_SOMETHING_NEW": "x", "MY_APP_SETTING": "y", "CUDA_VISIBLE_DEVICES": "0,1",
        "TRIBENCH_EXTRA_BACKENDS": "name=https://me:pw123456@example.com/x"})
    assert captured.values == {
        "CUDA_VISIBLE_DEVICES": "0,1", "NCCL_SOCKET_IFNAME": "eth0", "OMP_NUM_THREADS": "1",
        "TF_ENABLE_ONEDNN_OPTS": "0", "TORCHINDUCTOR_FREEZING": "1", "TRIBENCH_EXTRA_BACKENDS": REDACTED,
        "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false"}
    assert captured.withheld == {"NCCL_IB_TOKEN": "its name looks secret (TOKEN)"}
    assert captured.redacted == {"TRIBENCH_EXTRA_BACKENDS": "it holds a URL with a password"}


def test_every_captured_name_has_a_reason():
    assert all(reason.strip() for reason in env_capture.BY_NAME.values())
    assert env_capture.reason_to_capture("NCCL_ALGO") == "NCCL collective settings (data-parallel GPUs)"
    assert env_capture.reason_to_capture("TF_VAR_db_password") is None


@pytest.mark.parametrize("name, secret", [
    ("TF_TOKEN_app_terraform_io", True), ("TF_VAR_db_password", True), ("HFTOKEN", True), ("API_KEY", True),
    ("AWS_SECRET_ACCESS_KEY", True), ("SSH_AUTH_SOCK", True), ("BROWSER_COOKIE", True),
    ("KEYBOARD_LAYOUT", False), ("AUTHOR", False), ("OMP_NUM_THREADS", False), ("NCCL_IB_HCA", False)])
def test_secret_names(name, secret):
    assert (secret_name_reason(name) is not None) is secret


@pytest.mark.parametrize("value, credential", [
    ("https://bob:pa55w0rd@db.example.com/x", True), ("ghp_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8", True),
    ("AKIAIOSFODNN7EXAMPLE", True), ("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", True),
    ("0123456789abcdef0123456789abcdef01234567", False),  # a commit id stays
    ("--xla_force_host_platform_device_count=2", False), ("cudnn_v8_API_enabled_for_all", False),
    ("https://example.com/path", False), ("max_split_size_mb:128", False),
    ("Global_Conv2dGradNodeFinal", False), ("Global_BatchNormGradNodeFinal", False),  # Paddle's operator names
    ("Kx9fQ2mZp7LwR4tYb8NcV3hJ", True), ("q8ZrT5vLm2XwK9pN4bY7cHj3Fd", True)])  # random keys, mixed case
def test_credential_values(value, credential):
    assert (credential_value_reason(value) is not None) is credential


def test_failed_identifier_matches_take_linear_time():
    """A long word that is almost an identifier ("a" * 200 + "-", a commit id + "-dirty") is scrubbed at once:
    the identifier pattern has no overlapping alternatives to backtrack through."""
    import time

    from tribench.harness.redaction import CAMEL_CASE

    words = ["a" * 200 + "-", "0123456789abcdef0123456789abcdef01234567-dirty", "Ab" * 100 + "-", "x_" * 100 + "Q"]
    started = time.perf_counter()
    for word in words:
        scrub(word)
        credential_value_reason(word)
        assert CAMEL_CASE.fullmatch(word) is None
    assert time.perf_counter() - started < 0.5


def test_scrub_keeps_tracebacks_readable():
    text = ('File "/work/.venv/lib/python3.11/site-packages/Keras/x.py", line 3\n'
            "token ghp_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8 url https://u:p4ss@h/x value hunter2-hunter2")
    assert scrub(text, ["hunter2-hunter2"]) == (
        'File "/work/.venv/lib/python3.11/site-packages/Keras/x.py", line 3\n'
        "token <redacted> url https://u:<redacted>@h/x value <redacted>")


# ---- the audit -----------------------------------------------------------------------------------------

def _leaks(text: str) -> list[str]:
    return [value for value in PLANTED_VALUES if value in text]


def _all_text(folder: Path) -> str:
    return "\n".join(path.read_text(errors="replace") for path in sorted(folder.rglob("*")) if path.is_file())


def test_env_json_prints_no_planted_value():
    done = tribench("env", "--json", env={**os.environ, **PLANTED})
    assert done.returncode == 0, done.stderr
    assert _leaks(done.stdout) == []
    env_vars = json.loads(done.stdout)
    assert "TF_TOKEN_app_terraform_io" not in env_vars["env_vars"]
    assert env_vars["env_vars_capture"]["withheld"]["NCCL_IB_TOKEN"] == "its name looks secret (TOKEN)"


def test_audit_no_planted_secret_reaches_any_file_or_output(tmp_path):
    run_file, base_file = tmp_path / "run.json", tmp_path / "base.json"
    env = fake_env("rnn=leak", **PLANTED)
    for path in (base_file, run_file):
        done = tribench("run", "--backend", "fake", "--workload", "cnn,rnn", "--mode", "train", "--processes", "2",
                        "--min-time", "0.05", "--max-time", "0.2", *TAGS, "--output", str(path), env=env)
        assert done.returncode == 0, done.stderr
        assert _leaks(done.stdout + done.stderr) == []
    run = load_run(run_file)
    leak = next(case for case in run["cases"] if case["spec"]["workload"] == "rnn")
    assert leak["status"] == "failed" and "planted:" in leak["repeats"][0]["stderr_tail"]  # the leak was printed
    assert run["tags"]["commit"] == "0123456789abcdef0123456789abcdef01234567"
    assert run["tags"]["hf_token"] == REDACTED
    outputs = [run_file.read_text()]
    for args in (["report", str(run_file), "-o", str(tmp_path / "r.html")],
                 ["report", str(run_file), "--format", "markdown"], ["report", str(run_file), "--format", "table"],
                 ["export", str(run_file), "--to", "pytest-benchmark"],
                 ["export", str(run_file), "--to", "github-action-benchmark", "--tool", "customBiggerIsBetter"],
                 ["export", str(run_file), "--to", "csv"],
                 ["compare", str(base_file), str(run_file), "--format", "json", "--allow-inconclusive"],
                 ["compare", str(base_file), str(run_file), "--format", "markdown", "--allow-inconclusive"]):
        done = tribench(*args, env=env)
        assert done.returncode in (0, 1), (args, done.stderr)
        outputs.append(done.stdout + done.stderr)
    outputs.append((tmp_path / "r.html").read_text())
    assert [_leaks(text) for text in outputs] == [[]] * len(outputs)


def test_audit_profile_traces_carry_no_planted_secret(tmp_path):
    run_file = tmp_path / "run.json"
    done = tribench("run", "--backend", "torch", "--workload", "cnn", "--mode", "infer", "--processes", "1",
                    "--min-time", "0.05", "--max-time", "0.2", "--no-energy", "--profile", "--profile-steps", "1",
                    *TAGS, "--output", str(run_file), env={**os.environ, **PLANTED})
    assert done.returncode == 0, done.stderr
    traces = tmp_path / "run-traces"
    assert any(path.is_file() for path in traces.rglob("*"))
    assert _leaks(_all_text(traces)) == []
    assert _leaks(run_file.read_text()) == []


# ---- --redact -----------------------------------------------------------------------------------------

def _identifying_run(tmp_path: Path, name: str, factor: float = 1.0) -> Path:
    """A real run file that names a user, a home folder and a host, as one from a laptop would."""
    run = json.loads((ROOT / "tests/data/run-sweep.json").read_text())
    run["run_id"] = f"{name}-id"
    run["environment"]["machine"]["hostname"] = "alice-laptop.corp.example"
    run["environment"]["python"]["executable"] = "/home/alice/venvs/bench/bin/python"
    run["command"] = ["/home/alice/venvs/bench/bin/tribench", "run", "--output", "/home/alice/results/a.json"]
    for case in run["cases"]:
        for process in case.get("repeats", []):
            process["python"] = "/home/alice/venvs/bench/bin/python"
            process["stderr_tail"] = 'File "/home/alice/venvs/bench/lib/x.py" on alice-laptop.corp.example'
            process["timing"]["samples_s"] = [s * factor for s in process["timing"]["samples_s"]]
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(run))
    return path


def _identifies(text: str) -> list[str]:
    """The identifying words in ``text`` (whole words: plotly's "aliceblue" is not a user)."""
    words = ("alice", "corp.example", platform.node())
    found = [word for word in words if word and re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", text)]
    return found + (["/home/"] if "/home/" in text else [])


def test_redacted_reports_exports_and_comparisons_name_no_host_user_or_home(tmp_path):
    base, head = _identifying_run(tmp_path, "base"), _identifying_run(tmp_path, "head", 1.2)
    outputs = []
    for args in (["report", str(head), "--redact", "--cdn", "-o", str(tmp_path / "r.html")],
                 ["report", str(head), "--redact", "--format", "markdown"],
                 ["report", str(head), "--redact", "--format", "table"],
                 ["export", str(head), "--redact", "--to", "csv"],
                 ["export", str(head), "--redact", "--to", "pytest-benchmark"],
                 ["compare", str(base), str(head), "--redact", "--format", "json", "--allow-inconclusive"]):
        done = tribench(*args)
        assert done.returncode in (0, 1), (args, done.stderr)
        outputs.append(done.stdout)
    outputs.append((tmp_path / "r.html").read_text())
    assert [_identifies(text) for text in outputs] == [[]] * len(outputs)
    unredacted = tribench("report", str(head), "--format", "markdown")
    assert "alice" in unredacted.stdout  # the check above would have seen it


def test_a_redacted_run_keeps_cases_fingerprint_and_stable_placeholders(tmp_path):
    original = load_run(_identifying_run(tmp_path, "base"))
    redacted = redact_run(original)
    assert redacted["environment"]["machine"]["hostname"] == host_placeholder("alice-laptop.corp.example")
    assert redacted["environment"]["python"]["executable"] == "~/venvs/bench/bin/python"
    assert redacted["command"] == ["<path>/tribench", "run", "--output", "<path>/a.json"]
    assert redacted["environment"]["fingerprint"] == original["environment"]["fingerprint"]
    assert [case["id"] for case in redacted["cases"]] == [case["id"] for case in original["cases"]]
    assert [case["metrics"] for case in redacted["cases"]] == [case["metrics"] for case in original["cases"]]
    assert redacted["share_safe"]["redacted"]
    assert _identifies(json.dumps(redacted)) == []


def test_compare_and_history_work_on_redacted_files(tmp_path):
    base, head = _identifying_run(tmp_path, "base"), _identifying_run(tmp_path, "head", 1.2)
    for path in (base, head):
        done = tribench("redact", str(path), "-o", str(path.with_suffix(".safe.json")))
        assert done.returncode == 0, done.stderr
        assert _identifies(path.with_suffix(".safe.json").read_text()) == []
    plain = tribench("compare", str(base), str(head), "--format", "json", "--allow-inconclusive")
    safe = tribench("compare", str(base.with_suffix(".safe.json")), str(head.with_suffix(".safe.json")),
                    "--format", "json", "--allow-inconclusive")
    assert safe.returncode == plain.returncode
    verdicts = [{case["id"]: case["verdict"] for case in json.loads(done.stdout)["cases"]} for done in (plain, safe)]
    assert verdicts[0] == verdicts[1] and verdicts[0]
    history = tribench("history", str(base.with_suffix(".safe.json")), str(head.with_suffix(".safe.json")),
                       "--format", "json")
    assert history.returncode == 0, history.stderr
    assert json.loads(history.stdout)

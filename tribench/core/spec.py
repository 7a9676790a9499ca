"""The case spec: one point of the benchmark matrix.

A case is backend x workload x size x mode x batch size x precision x compile
mode x device. Strings from the command line or a suite file are parsed into a
frozen ``CaseSpec`` once, at the boundary; everything after works with typed
values. The case ``id`` is built from the fields alone, so the same spec always
gives the same id and runs can be joined on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from tribench.core.errors import InvalidChoice, InvalidValue

SIZES = ("tiny", "small", "standard")
MODES = ("train", "infer", "generate")  # generate: prefill a prompt, then decode token by token (decoder only)
PRECISIONS = ("fp32", "tf32", "bf16", "fp16")  # tf32: fp32 tensors, TF32 tensor-core math (harness.numerics)
# native: each framework as its users run it (PyTorch eager, TensorFlow tf.function, JAX jit); compiled: whole-program
# compilation; op-by-op: every op dispatched on its own. What each means per backend: backends.compile_meanings.
COMPILE_MODES = ("native", "compiled", "op-by-op")
RETIRED_COMPILE_MODES = {
    "eager": "compile mode 'eager' meant different things per framework and was replaced: use native (each "
             "framework as its users run it: PyTorch eager, TensorFlow tf.function, JAX jit) or op-by-op (every op "
             "dispatched on its own); valid choices: " + ", ".join(COMPILE_MODES),
}
DEVICES = ("cpu", "gpu", "tpu", "mps")
DEVICE_CHOICES = DEVICES + ("auto",)


@dataclass(frozen=True)
class CaseSpec:
    backend: str
    workload: str
    size: str
    mode: str
    batch_size: int
    precision: str = "fp32"
    compile: str = "native"
    device: str = "cpu"
    env: str = ""          # the interpreter's label in a same-job A/B run (``--python A=... --python B=...``)
    devices: int = 1       # data-parallel devices per node (issue 8); batch_size is per device
    nodes: int = 1         # hosts taking part (``--nodes``); every host runs ``devices`` devices
    prompt: int = 0        # generate: prompt tokens prefilled per sequence (0 for train and infer)
    new_tokens: int = 0    # generate: tokens generated per sequence, the first by the prefill (0 otherwise)

    @property
    def id(self) -> str:
        generation = f"/p{self.prompt}n{self.new_tokens}" if self.mode == "generate" else ""
        point = (
            f"{self.backend}/{self.workload}-{self.size}/{self.mode}/bs{self.batch_size}{generation}"
            f"/{self.precision}/{self.compile}/{self.device}"
        ) + self._parallel_suffix()
        return f"{point}@{self.env}" if self.env else point

    def _parallel_suffix(self) -> str:
        """``/xN`` for N devices on one host, ``/MxN`` for M hosts; nothing for one device (ids stay stable)."""
        if self.nodes > 1:
            return f"/{self.nodes}x{self.devices}"
        return f"/x{self.devices}" if self.devices > 1 else ""

    @property
    def total_devices(self) -> int:
        """Devices over every host: the data-parallel world (global batch = batch_size x this)."""
        return self.nodes * self.devices

    @property
    def point_id(self) -> str:
        """The id without the A/B label: the same case point under every interpreter."""
        return replace(self, env="").id

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CaseSpec:
        names = {f.name for f in fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise InvalidValue(f"unknown case fields: {', '.join(sorted(unknown))}")
        return cls(**{k: data[k] for k in names if k in data})


def check_choice(what: str, value: str, choices: tuple[str, ...] | list[str]) -> str:
    """Return ``value`` if it is one of ``choices``, else raise InvalidChoice."""
    if value not in choices:
        raise InvalidChoice(what, value, choices)
    return value


def parse_batch_size(value: object) -> int:
    """A batch size is a whole number above zero; '32' and 32 both work."""
    text = str(value).strip()
    if isinstance(value, bool) or not text.lstrip("+").isdigit():
        raise InvalidValue(f"batch size must be a whole number above 0, got {value!r}")
    number = int(text)
    if number <= 0:
        raise InvalidValue(f"batch size must be a whole number above 0, got {value!r}")
    return number


def split_list(value: str | None) -> list[str]:
    """Split a comma-separated CLI value, dropping blanks and keeping order."""
    if value is None:
        return []
    return [part.strip() for part in value.split(",") if part.strip()]

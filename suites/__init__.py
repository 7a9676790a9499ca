"""Framework-neutral workloads and suite files, and their expansion into case specs.

``expand(matrix, backend_names)`` turns a matrix (lists of values per axis) into the list of
``CaseSpec`` (a workload plugin's sizes are its own: a pair of workload and size it lacks is left
out); ``suite_file.load`` reads a matrix from a TOML suite file. The workloads never import
the engine or the backends: which backends exist is the caller's to say (the registry's
``backends.names()``), so a matrix's backend names are checked where it is expanded.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from tribench.core.errors import InvalidValue
from tribench.core.spec import (
    COMPILE_MODES,
    DEVICE_CHOICES,
    MODES,
    PRECISIONS,
    RETIRED_COMPILE_MODES,
    SIZES,
    CaseSpec,
    check_choice,
    parse_batch_size,
)
from tribench.suites import workloads


@dataclass(frozen=True)
class Matrix:
    """One value list per axis of the case matrix; every combination is a case."""

    backends: tuple[str, ...]
    workloads: tuple[str, ...]
    sizes: tuple[str, ...] = ("tiny",)
    modes: tuple[str, ...] = ("train", "infer")
    batch_sizes: tuple[int, ...] = (32,)
    precisions: tuple[str, ...] = ("fp32",)
    compile: tuple[str, ...] = ("native",)
    devices: tuple[str, ...] = ("auto",)
    prompts: tuple[int, ...] = (128,)      # generate only: prompt tokens per sequence
    new_tokens: tuple[int, ...] = (128,)   # generate only: tokens generated per sequence
    description: str = field(default="", compare=False)

    def override(self, **axes: list | tuple | None) -> Matrix:
        """A copy with every axis given (non-empty) replaced, e.g. from CLI flags."""
        given = {name: tuple(values) for name, values in axes.items() if values}
        return replace(self, **given)

    def validated(self, backend_names: Sequence[str] | None = None) -> Matrix:
        """Check every value of every axis (backends only when ``backend_names`` says which exist); raises
        InvalidChoice/InvalidValue naming the valid ones."""
        for name in self.workloads:
            workloads.get(name)  # an unknown name, hf: model or configuration file: one line naming the choices
        builtin_only = all(workloads.is_builtin(name) for name in self.workloads)
        if not builtin_only:  # a plugin's sizes are its own (built-in sizes are checked with the other axes)
            workloads.check_sizes(self.workloads, self.sizes)
        for axis, choices in (
            ("backend", backend_names), ("size", SIZES if builtin_only else None),
            ("mode", MODES), ("precision", PRECISIONS), ("compile mode", COMPILE_MODES),
            ("device", DEVICE_CHOICES),
        ):
            if choices is None:
                continue
            for value in getattr(self, _AXIS_FIELDS[axis]):
                if axis == "compile mode" and value in RETIRED_COMPILE_MODES:
                    raise InvalidValue(RETIRED_COMPILE_MODES[value])
                check_choice(axis, value, choices)
        sizes = tuple(parse_batch_size(value) for value in self.batch_sizes)
        for axis in _AXIS_FIELDS.values():
            if not getattr(self, axis):
                raise InvalidValue(f"the case matrix has no {axis}; give at least one")
        prompts = tuple(parse_count("prompt length", value, low=1) for value in self.prompts)
        new_tokens = tuple(parse_count("new tokens", value, low=1) for value in self.new_tokens)
        if "generate" in self.modes:
            check_generation(self.workloads, self.sizes, prompts, new_tokens)
        return replace(self, batch_sizes=sizes, prompts=prompts, new_tokens=new_tokens)


_AXIS_FIELDS = {
    "backend": "backends", "workload": "workloads", "size": "sizes", "mode": "modes",
    "precision": "precisions", "compile mode": "compile", "device": "devices",
}


def parse_count(what: str, value: object, low: int) -> int:
    """A whole number of at least ``low`` ('128' and 128 both work); one line otherwise."""
    text = str(value).strip()
    if isinstance(value, bool) or not text.isdigit() or int(text) < low:
        raise InvalidValue(f"{what} must be a whole number of at least {low}, got {value!r}")
    return int(text)


def generates(workload: str) -> bool:
    """Whether ``workload`` can run the generate mode: a built-in causal decoder."""
    return workloads.is_builtin(workload) and isinstance(
        workloads.get(workload).architecture(workloads.SIZES[0]), workloads.DecoderSpec)


def check_generation(names: Sequence[str], sizes: Sequence[str], prompts: Sequence[int],
                     new_tokens: Sequence[int]) -> None:
    """generate needs a decoder workload, and every prompt + new tokens within its context; one line otherwise.
    Pairs of generate and a workload that does not generate are left out of the matrix (as sizes are)."""
    decoders = [name for name in names if generates(name)]
    if not decoders:
        raise InvalidValue(f"mode generate needs a decoder workload (decoder); {', '.join(names)} cannot generate")
    for name in decoders:
        for size in sizes:
            if size not in workloads.get(name).sizes:
                continue
            context = workloads.get(name).architecture(size).max_context
            longest = max(prompts) + max(new_tokens)
            if longest > context:
                raise InvalidValue(f"prompt {max(prompts)} + {max(new_tokens)} new tokens = {longest} positions; "
                                   f"{name}-{size} holds {context} (lower --prompt or --new-tokens)")


def _generation_points(mode: str, workload: str, matrix: Matrix) -> list[tuple[int, int]]:
    """(prompt, new tokens) per case: every pair for generate, none (0, 0) for train and infer."""
    if mode != "generate":
        return [(0, 0)]
    if not generates(workload):
        return []
    return list(itertools.product(matrix.prompts, matrix.new_tokens))


def expand(matrix: Matrix, backend_names: Sequence[str]) -> list[CaseSpec]:
    """Every combination of the matrix, validated against ``backend_names`` (the backends that exist),
    backends side by side per workload point."""
    matrix = matrix.validated(backend_names)
    product = itertools.product(
        matrix.workloads, matrix.sizes, matrix.modes, matrix.batch_sizes, matrix.precisions,
        matrix.compile, matrix.devices, matrix.backends,
    )
    specs = [
        CaseSpec(backend=b, workload=w, size=s, mode=m, batch_size=n, precision=p, compile=c, device=d,
                 prompt=prompt, new_tokens=new)
        for w, s, m, n, p, c, d, b in product if workloads.has_size(w, s)  # a plugin may offer fewer sizes
        for prompt, new in _generation_points(m, w, matrix)
    ]
    return list(dict.fromkeys(specs))  # drop repeats a matrix may spell twice, keep order

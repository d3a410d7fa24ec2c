"""show_config() names the kernel instruction set that was compiled and the one this CPU runs.

The chosen variant is checked against the CPU's flags (/proc/cpuinfo), the compiled variants against
the machine code of the extension (AVX2 code uses ymm registers, AVX-512 code zmm registers; the
baseline x86-64 variant uses neither). CI states what each build must contain with
TRAJCORE_EXPECT_KERNELS (e.g. ``avx512,avx2,generic``) and TRAJCORE_EXPECT_COMPILER (``gcc``,
``clang``), so a build that silently lost its variants fails here.
"""

import os
import platform
import re
import shutil
import subprocess

import pytest

import trajcore as tc
from trajcore import _core

X86 = platform.machine().lower() in ("x86_64", "amd64")


def _cpu_flags() -> set[str] | None:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return None


def _expected_choice(compiled: list[str], flags: set[str]) -> str:
    if "avx512" in compiled and {"avx512f", "avx512vl", "avx512dq", "avx2", "fma"} <= flags:
        return "avx512"
    if "avx2" in compiled and {"avx2", "fma"} <= flags:
        return "avx2"
    return compiled[-1]


def test_build_info_lists_the_compiled_variants_best_first():
    info = _core.build_info()
    compiled = info["kernel_isas_compiled"]
    if info["portable"]:
        assert compiled == ["portable"]
        assert not info["openmp"]
    else:
        assert compiled[-1] == "generic"
        assert compiled in (["generic"], ["avx512", "avx2", "generic"])
        if not X86:
            assert compiled == ["generic"]  # no x86 code on another architecture
    if platform.machine().lower() in ("aarch64", "arm64"):
        assert info["kernel_baseline"] == "neon"
    assert info["kernel_isa"] in compiled


@pytest.mark.skipif(_cpu_flags() is None or not X86, reason="needs /proc/cpuinfo of an x86-64 CPU")
def test_the_chosen_variant_is_the_best_this_cpu_supports():
    info = _core.build_info()
    flags = _cpu_flags()
    assert flags is not None
    assert info["kernel_isa"] == _expected_choice(info["kernel_isas_compiled"], flags)
    # The generic variant is compiled for the x86-64 baseline, whatever this CPU could do.
    assert info["kernel_baseline"] == "sse2"


def test_build_matches_what_ci_expects():
    info = _core.build_info()
    kernels = os.environ.get("TRAJCORE_EXPECT_KERNELS")
    compiler = os.environ.get("TRAJCORE_EXPECT_COMPILER")
    if kernels is None and compiler is None:
        pytest.skip("TRAJCORE_EXPECT_KERNELS / TRAJCORE_EXPECT_COMPILER not set (CI sets them per build)")
    if kernels is not None:
        assert info["kernel_isas_compiled"] == kernels.split(",")
    if compiler is not None:
        name = info["compiler"].lower()
        assert ("clang" in name) == (compiler == "clang"), info["compiler"]
        assert ("gcc" in name) == (compiler == "gcc"), info["compiler"]


@pytest.mark.skipif(not X86 or shutil.which("objdump") is None, reason="needs objdump and an x86-64 build")
def test_the_machine_code_holds_exactly_the_compiled_instruction_sets():
    # Register names in the disassembly of the extension: a "variant" built for the baseline (as clang
    # did with `#pragma GCC target`) would have no ymm/zmm code at all.
    disassembly = subprocess.run(
        ["objdump", "-d", "--no-show-raw-insn", _core.__file__], capture_output=True, text=True, check=True
    ).stdout
    compiled = _core.build_info()["kernel_isas_compiled"]
    assert bool(re.search(r"%zmm\d", disassembly)) == ("avx512" in compiled)
    assert bool(re.search(r"%ymm\d", disassembly)) == ("avx2" in compiled)


def test_show_config_names_the_chosen_and_compiled_variants(capsys):
    tc.show_config()
    out = capsys.readouterr().out
    info = _core.build_info()
    line = next(x for x in out.splitlines() if x.strip().startswith("kernels"))
    assert line.split()[1] == info["kernel_isa"]
    assert "compiled: " + ", ".join(info["kernel_isas_compiled"]) in line
    assert info["compiler"] in out

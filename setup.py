"""Build the compiled parts of trajcore.

* ``trajcore._core`` -- the C++17 core (pybind11), every ``csrc/*.cpp``; OpenMP when the compiler
  supports it, a serial build otherwise (``TRAJCORE_NO_OPENMP=1`` forces serial).
* ``trajcore._series`` -- series statistics (Cython).

Portable flags only: no ``-march=native``. On x86-64 the hot kernels are compiled three times, in
their own translation units (``csrc/kernels_generic.cpp`` for the baseline, ``kernels_avx2.cpp`` with
``-mavx2 -mfma``, ``kernels_avx512.cpp`` with ``-mavx512f -mavx512vl -mavx512dq``), and the CPU picks
one at load time (``csrc/kernels.hpp``), under GCC and clang alike. Where the compiler does not accept
those flags for the target (another architecture, a universal2 build) only the generic variant is built.

``TRAJCORE_PORTABLE=1`` builds plain C++17: no GCC vector extensions, no OpenMP, no x86 variants --
the path MSVC always takes. ``TRAJCORE_SANITIZE=1`` builds with AddressSanitizer +
UndefinedBehaviorSanitizer. Sources compile in parallel (``TRAJCORE_BUILD_JOBS``, default: all CPUs).
"""

import glob
import os
import subprocess
import sys
import tempfile

import numpy
from Cython.Build import cythonize
from pybind11.setup_helpers import ParallelCompile, Pybind11Extension
from pybind11.setup_helpers import build_ext as pybind_build_ext
from setuptools import Extension, setup

# The variant TUs and the flags that select their instruction set (csrc/kernels.hpp).
ISA_FLAGS = {
    "kernels_avx2.cpp": ["-mavx2", "-mfma"],
    "kernels_avx512.cpp": ["-mavx512f", "-mavx512vl", "-mavx512dq", "-mavx2", "-mfma"],
}
ISA_PROBE = """
#if !defined(__x86_64__)
#error "the AVX variants are x86-64 only"
#endif
typedef double v4 __attribute__((vector_size(32)));
v4 twice(v4 a) { return a + a; }
"""


def _compiler_accepts(compiler_cmd, flags):
    """Whether ``compiler_cmd`` compiles and links an OpenMP program with ``flags``."""
    source = "#include <omp.h>\nint main(){ return omp_get_max_threads() > 0 ? 0 : 1; }\n"
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "probe.cpp")
        with open(src, "w") as fh:
            fh.write(source)
        cmd = [*compiler_cmd, src, "-o", os.path.join(tmp, "probe"), *flags]
        try:
            return subprocess.run(cmd, capture_output=True, check=False).returncode == 0
        except OSError:
            return False


def _env_flag(name):
    return os.environ.get(name, "0") == "1"


class build_ext(pybind_build_ext):
    def _compiles(self, source, flags):
        """Whether this build's compiler (with every flag setuptools gives it) compiles ``source``."""
        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, "probe.cpp")
            with open(src, "w") as fh:
                fh.write(source)
            try:
                self.compiler.compile([src], output_dir=tmp, extra_postargs=flags)
            except Exception:  # CompileError, or a compiler that cannot start
                return False
            return True

    def build_extensions(self):
        msvc = self.compiler.compiler_type == "msvc"
        portable = _env_flag("TRAJCORE_PORTABLE") or msvc
        sanitize = _env_flag("TRAJCORE_SANITIZE")
        use_openmp = (
            not portable
            and not _env_flag("TRAJCORE_NO_OPENMP")
            and _compiler_accepts(self.compiler.compiler_cxx, ["-fopenmp"])
        )
        isa = not portable and all(self._compiles(ISA_PROBE, flags) for flags in ISA_FLAGS.values())
        for ext in self.extensions:
            if msvc:
                ext.extra_compile_args.append("/O2")
            else:
                # -g0: no debug info in release builds (Python's CFLAGS carry -g; Pybind11Extension
                # adds -g0 to the core too). The sanitizer flags below turn -g back on.
                ext.extra_compile_args.extend(["-O3", "-g0"])
            if ext.name != "trajcore._core":
                continue
            if not msvc:
                ext.extra_compile_args.extend(["-fno-math-errno", "-Wall"])
            if portable:
                ext.define_macros.append(("TRAJCORE_PORTABLE", "1"))
            if isa:
                ext.define_macros.append(("TRAJCORE_ISA_KERNELS", "1"))
            if use_openmp:
                ext.extra_compile_args.append("-fopenmp")
                ext.extra_link_args.append("-fopenmp")
                ext.define_macros.append(("TRAJCORE_OPENMP", "1"))
            if sanitize:
                # -O1 (after the -O3 above, so it wins) compiles far faster: 186 s against 428 s at -O3 for
                # the .ci/sanitize build on 2 shared cores (under different loads). ASan reports stay exact.
                flags = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-g", "-O1"]
                ext.extra_compile_args.extend(flags)
                ext.extra_link_args.extend(flags)
                ext.define_macros.append(("TRAJCORE_SANITIZE", "1"))
        if isa:
            self._add_isa_flags()
        print(
            f"trajcore: {'portable (plain C++17)' if portable else 'vector'} kernels, "
            f"x86 variants {'avx2+avx512' if isa else 'off'}, OpenMP {'on' if use_openmp else 'off'}, "
            f"sanitizers {'on' if sanitize else 'off'}"
        )
        super().build_extensions()

    def _add_isa_flags(self):
        """Compile the variant TUs with their instruction-set flags (appended last, so they win)."""
        compile_one = self.compiler._compile

        def _compile(obj, src, ext, cc_args, extra_postargs, pp_opts):
            extra = ISA_FLAGS.get(os.path.basename(src), [])
            compile_one(obj, src, ext, cc_args, [*extra_postargs, *extra], pp_opts)

        self.compiler._compile = _compile


core = Pybind11Extension(
    "trajcore._core",
    sorted(glob.glob("csrc/*.cpp")),
    include_dirs=["csrc"],
    cxx_std=17,
    depends=sorted(glob.glob("csrc/*.hpp") + glob.glob("csrc/*.inc")),
)

series = Extension(
    "trajcore._series",
    ["trajcore/_series.pyx"],
    include_dirs=[numpy.get_include()],
    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
)

ParallelCompile("TRAJCORE_BUILD_JOBS").install()

setup(
    ext_modules=[core, *cythonize([series], language_level=3, quiet=True)],
    cmdclass={"build_ext": build_ext},
)

if __name__ == "__main__" and len(sys.argv) == 1:
    print(__doc__)

"""Build the compiled parts of trajcore.

* ``trajcore._core`` -- the C++17 core (pybind11), every ``csrc/*.cpp``; OpenMP when the compiler
  supports it, a serial build otherwise (``TRAJCORE_NO_OPENMP=1`` forces serial).
* ``trajcore._series`` -- series statistics (Cython).

Portable flags only: no ``-march=native``; hot kernels use function multi-versioning
(``target_clones``) so wheels run on any x86-64 and still use AVX2/FMA where the CPU has it.
``TRAJCORE_SANITIZE=1`` builds with AddressSanitizer + UndefinedBehaviorSanitizer.
"""

import glob
import os
import subprocess
import sys
import tempfile

import numpy
from Cython.Build import cythonize
from pybind11.setup_helpers import Pybind11Extension
from pybind11.setup_helpers import build_ext as pybind_build_ext
from setuptools import Extension, setup


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


class build_ext(pybind_build_ext):
    def build_extensions(self):
        use_openmp = os.environ.get("TRAJCORE_NO_OPENMP", "0") != "1" and _compiler_accepts(
            self.compiler.compiler_cxx, ["-fopenmp"]
        )
        sanitize = os.environ.get("TRAJCORE_SANITIZE", "0") == "1"
        for ext in self.extensions:
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
        print(f"trajcore: OpenMP {'on' if use_openmp else 'off'}, sanitizers {'on' if sanitize else 'off'}")
        super().build_extensions()


core = Pybind11Extension(
    "trajcore._core",
    sorted(glob.glob("csrc/*.cpp")),
    include_dirs=["csrc"],
    cxx_std=17,
    extra_compile_args=["-O3", "-fno-math-errno", "-Wall"],
    depends=sorted(glob.glob("csrc/*.hpp") + glob.glob("csrc/*.inc")),
)

series = Extension(
    "trajcore._series",
    ["trajcore/_series.pyx"],
    include_dirs=[numpy.get_include()],
    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    extra_compile_args=["-O3"],
)

setup(
    ext_modules=[core, *cythonize([series], language_level=3, quiet=True)],
    cmdclass={"build_ext": build_ext},
)

if __name__ == "__main__" and len(sys.argv) == 1:
    print(__doc__)

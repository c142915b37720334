"""Build the optional C extension ``vecdb._native``.

The kernels are compiled with baseline x86-64 flags; each ISA variant opts in with
function-level target attributes and is picked at import by a CPU probe. When no C compiler
works (``CC=false``) the package still installs and runs on its numba kernels.
"""

import os
import sys

import numpy as np
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

SOURCES = [
    "native/src/serial.c",
    "native/src/x86_avx2.c",
    "native/src/x86_avx512.c",
    "native/src/dispatch.c",
    "native/python/module.c",
    "native/python/searcher.c",
]


class OptionalBuildExt(build_ext):
    """Build the extension if a compiler is available; otherwise warn and carry on."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:
            self._skip(exc)

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:
            self._skip(exc)

    @staticmethod
    def _skip(exc: Exception) -> None:
        print(f"vecdb: C kernels not built ({exc}); falling back to numba kernels", file=sys.stderr)


extra_compile_args = ["-O3", "-std=c99", "-fno-strict-aliasing", "-Wall", "-Wno-unused-function"]
if os.name == "nt":
    extra_compile_args = ["/O2"]

setup(
    ext_modules=[
        Extension(
            "vecdb._native",
            sources=SOURCES,
            include_dirs=["native/include", np.get_include()],
            depends=["native/include/vecdb_kernels.h", "native/src/vdb_internal.h", "native/src/hnsw_search.h",
                     "native/src/graph_heap.h"],
            extra_compile_args=extra_compile_args,
            define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        )
    ],
    cmdclass={"build_ext": OptionalBuildExt},
)

"""Build bessai-edge: the Python package and its compiled decode and safety core."""

import os

from Cython.Build import cythonize
from setuptools import Extension, find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def read_version():
    with open(os.path.join(HERE, "bessai_edge", "__init__.py"), encoding="utf-8") as stream:
        for line in stream:
            if line.startswith("__version__"):
                return line.split('"')[1]
    raise RuntimeError("__version__ not found in bessai_edge/__init__.py")


# The compiled core: the C library in native/ and its Cython binding, built into one
# extension module. `depends` rebuilds it when the header or the .pxd change, and puts
# them and the .pyx (which cythonize replaces by the generated .c in `sources`) in the
# sdist.
core = Extension(
    "bessai_edge._core",
    sources=["bessai_edge/_core.pyx", "native/bessai_core.c"],
    depends=["native/bessai_core.h", "bessai_edge/_core.pxd", "bessai_edge/_core.pyx"],
    include_dirs=["native"],
    # -ffp-contract=off: the core's rounding relies on x * y being rounded on its own,
    # never fused into an fma by the compiler (GCC fuses outside ISO C modes).
    extra_compile_args=["-std=c99", "-O2", "-Wall", "-Wextra", "-ffp-contract=off"],
)

setup(
    name="bessai-edge",
    version=read_version(),
    description="Modbus TCP edge gateway for battery energy storage systems",
    license="Apache-2.0",
    python_requires=">=3.11",
    packages=find_packages(include=["bessai_edge", "bessai_edge.*"]),
    package_data={"bessai_edge": ["locale/*/LC_MESSAGES/*.mo"]},
    exclude_package_data={"bessai_edge": ["*.pyx", "*.pxd", "*.c", "*.h"]},
    ext_modules=cythonize([core], language_level=3),
    install_requires=[
        "pymodbus",
        "orjson",
        "sdnotify",
        "systemd-python",
        "paho-mqtt",
        "h11",
        "prometheus-client",
    ],
    extras_require={"test": ["pytest", "pytest-xdist", "pytest-timeout", "hypothesis", "cffi", "atheris", "jsonschema"]},
    entry_points={"console_scripts": ["bessai = bessai_edge.cli:main"]},
)

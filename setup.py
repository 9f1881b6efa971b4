"""The one compiled module, a bulk batch's line checker (loader/_plain_rows.c); the rest of
the package is declared in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "loader._plain_rows",
            sources=["loader/_plain_rows.c"],
            extra_compile_args=["-O2", "-Wall"],
        )
    ]
)

"""Builds the optional compiled inner loops (sentimentkit/text/_speedups.c); everything else is in
pyproject.toml. Without a C compiler the build goes on and the package uses its NumPy code."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "sentimentkit.text._speedups",
            ["sentimentkit/text/_speedups.c"],
            extra_compile_args=["-O3"],
            optional=True,
        )
    ]
)

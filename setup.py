"""Packaging entry: `pip install .` installs the `app` package and the `memory-proxy` command."""

from pathlib import Path

from setuptools import find_packages, setup


def requirements() -> list[str]:
    lines = Path(__file__).with_name("requirements.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


setup(
    name="memory-proxy",
    version="0.1.0",
    description="An OpenAI-compatible proxy that gives long conversations a memory",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(include=["app", "app.*"]),
    package_data={"app": ["data/*.npz", "ui/static/*"]},
    install_requires=requirements(),
    extras_require={"livekit": ["livekit-agents>=1.2", "livekit-plugins-openai>=1.2"]},
    entry_points={"console_scripts": ["memory-proxy=app.cli:main"]},
)

"""Packaging for edgecam (build settings and tool config live in pyproject.toml)."""

from setuptools import find_packages, setup

setup(
    name="edgecam",
    version="0.1.0",
    description="Edge camera node: motion-gated INT8 detection, signed clips, durable MQTT events",
    python_requires=">=3.10",
    packages=find_packages(include=["edge", "edge.*"]),
    # flat layout stated outright: the editable install is then a plain .pth line, and setuptools' "Editable
    # installation ... folders with the same name as your package" warning is no longer printed (issue #13.10)
    package_dir={"": "."},
    package_data={"edge": ["schema/*.json", "api/web/*", "api/openapi.json", "central/web/*"]},
    install_requires=[
        "numpy>=1.24",
        "opencv-python-headless>=4.8",
        "onnxruntime>=1.16",
        "paho-mqtt>=2.0,<3",
        "pydantic>=2.5,<3",
        "av>=12",
        "cryptography>=41",
        "aiohttp>=3.9",
        "tomli>=2.0; python_version<'3.11'",
    ],
    extras_require={
        "prepare": ["onnx>=1.15", "sympy"],
        "central": ["psycopg[binary]>=3.1"],
        # PP-OCR det+rec ONNX models ship inside the rapidocr wheel (Apache-2.0): nothing downloads at run time.
        "plates": ["rapidocr>=3,<4"],
        "test": [
            "pytest>=7.4",
            "pytest-timeout>=2.2",
            "jsonschema>=4.19",
            "hypothesis>=6.90",
            "playwright>=1.40",
            "onnx>=1.15",
            "sympy",
            "psycopg[binary]>=3.1",
            "ruff>=0.4",
        ],
        # `make lint`: import contracts (pyproject [tool.importlinter]) and the type check ([tool.mypy])
        "lint": ["ruff>=0.4", "import-linter>=2.0", "mypy>=1.8"],
        # benchmark figures (docs/soak.png): never on a node
        "bench": ["matplotlib>=3.7"],
    },
    entry_points={"console_scripts": ["edgecam=edge.cli:main"]},
)

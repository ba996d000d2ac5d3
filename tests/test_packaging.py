"""The package as users get it: a wheel built with `python -m build` installs on its own and imports, carrying the
model-card template, the growth map, py.typed, the license and the console script."""

import re
import subprocess
import sys
import zipfile

import pytest
from conftest import REPO_ROOT

import hf_progressive


@pytest.mark.slow
def test_the_wheel_installs_and_imports_outside_the_source_tree(tmp_path):
    built = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(tmp_path / "dist"), str(REPO_ROOT)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("hf_progressive-*.whl")
    assert wheel.name.startswith(f"hf_progressive-{hf_progressive.__version__}-")
    names = zipfile.ZipFile(wheel).namelist()
    shipped = (
        "hf_progressive/py.typed",
        "hf_progressive/growth_map.json",
        "hf_progressive/cli.py",
        "hf_progressive/examples/run_clm_progressive.py",  # what `hf-progressive train` runs
        "hf_progressive/examples/reference/demo_fixed_equal_flops.json",
        "hf_progressive/kernels/flash_triton.py",
    )
    for expected in shipped:
        assert expected in names, expected
    assert "hf_progressive/model_cards/progressive_causal_lm.md" in names
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names)
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "License-Expression: Apache-2.0" in metadata and "Provides-Extra: peft" in metadata
    for extra in ("peft", "triton"):  # extras, not core dependencies
        assert f"Requires-Dist: {extra}" not in metadata.split("Provides-Extra")[0], extra
    # The package index's page: the self-contained description, rendered as PyPI renders it, with no link that only
    # works inside the repository.
    description = metadata.split("\n\n", 1)[1]
    assert description.startswith("# hf_progressive") and "Content-Type: text/markdown" in metadata
    relative = re.findall(r"\]\((?!https?://|#)([^)]+)\)", description)
    assert relative == [] and "../shared" not in description
    from readme_renderer.markdown import render

    html = render(description, variant="GFM")
    assert html is not None and "<code>depth_schedule</code>" in html
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "hf-progressive = hf_progressive.cli:main" in entry_points

    # Installed on its own (its dependencies come from this environment), imported from outside the source tree.
    site = tmp_path / "site"
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(site), str(wheel)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr[-2000:]
    smoke = (
        "import hf_progressive, importlib.resources as r; from hf_progressive.hub import template_path; "
        "from hf_progressive.advice import advise; "
        "assert template_path('progressive_causal_lm.md').is_file(); "
        "assert r.files('hf_progressive').joinpath('growth_map.json').is_file(); "
        "from hf_progressive.cli import example_script; import os; assert os.path.isfile(example_script()); "
        "print(hf_progressive.__file__, hf_progressive.__version__)"
    )
    result = subprocess.run(
        [sys.executable, "-c", smoke], cwd=tmp_path, env={"PYTHONPATH": str(site), "PATH": ""},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    location, version = result.stdout.split()
    assert location.startswith(str(site)) and version == hf_progressive.__version__


@pytest.mark.parametrize(
    "setup, message",
    [
        (
            "import torch; torch.__version__ = '2.6.0'",
            "torch 2.6.0 is installed, torch>=2.9 is needed (torch.optim.Muon",
        ),
        (
            "import transformers; transformers.__version__ = '4.57.1'",
            "transformers 4.57.1 is installed, transformers>=5.0",
        ),
        ("import torch; del torch.optim.Muon", "has no torch.optim.Muon"),
    ],
)
def test_an_old_torch_or_transformers_fails_at_import_naming_the_upgrade(setup, message):
    """What pip cannot enforce (a torch from another index, an environment that kept old packages) fails first, in
    one line, instead of deep inside the package."""
    result = subprocess.run(
        [sys.executable, "-c", f"{setup}; import hf_progressive"], capture_output=True, text=True, timeout=300
    )
    assert result.returncode != 0
    assert "ImportError: hf_progressive cannot start: " in result.stderr and message in result.stderr, result.stderr

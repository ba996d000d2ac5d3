"""The versions ``import hf_progressive`` needs, checked first, so an old install fails with what to upgrade instead
of an ``ImportError`` from deep inside (the floors in ``pyproject.toml``, for what pip cannot enforce: a torch
installed from another index, an environment that kept an older transformers)."""

from __future__ import annotations

import torch
import transformers

#: (distribution, oldest major.minor, why).
FLOORS = (
    ("torch", (2, 9), "torch.optim.Muon, which Muon-NSGD builds on, arrived in torch 2.9"),
    ("transformers", (5, 0), "hf_progressive is written against the transformers 5 API"),
)


def _major_minor(version: str) -> tuple[int, int]:
    parts = version.split("+")[0].split(".")
    return int(parts[0]), int("".join(c for c in parts[1] if c.isdigit()) or 0) if len(parts) > 1 else 0


def check_requirements() -> None:
    """Raise ``ImportError`` naming each installed version below its floor and what it is needed for."""
    installed = {"torch": torch.__version__, "transformers": transformers.__version__}
    too_old = [
        f"{name} {installed[name]} is installed, {name}>={'.'.join(map(str, floor))} is needed ({why})"
        for name, floor, why in FLOORS
        if _major_minor(installed[name]) < floor
    ]
    if not hasattr(torch.optim, "Muon") and not any(item.startswith("torch ") for item in too_old):
        too_old.append(f"torch {installed['torch']} has no torch.optim.Muon (a build without it?): torch>=2.9 has it")
    if too_old:
        raise ImportError("hf_progressive cannot start: " + "; ".join(too_old) + ". Upgrade with pip install -U.")


check_requirements()

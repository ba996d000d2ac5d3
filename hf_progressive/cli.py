"""``hf-progressive``: train with growth, look at a checkpoint's growth, and grow one offline.

    hf-progressive train --model_type llama --output_dir out    # examples/run_clm_progressive.py, every flag of it
    hf-progressive inspect outputs/run_clm_progressive          # depth, plan, growth lineage, FLOPs
    hf-progressive grow my-model --to 40 --init llama_pro --out my-model-40   # the same grow() as in training

For several processes, ``accelerate launch`` the example script itself (``hf-progressive train --help`` names it).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from .configuration import progressive_metadata, update_progressive_metadata
from .inits import get_init

# Growth events written by offline surgery have no training step.
OFFLINE = "offline"


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``hf-progressive`` console script. Returns the exit status (0, or 1 on bad input)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["train"]:
        return train(argv[1:])
    parser = argparse.ArgumentParser(prog="hf-progressive", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("train", help="train with growth: examples/run_clm_progressive.py with all its flags")
    inspect = commands.add_parser("inspect", help="print a checkpoint's depth, growth plan and lineage, and FLOPs")
    inspect.add_argument("path", help="a model folder (or a Hub model id, when the Hub is reachable)")
    grow = commands.add_parser("grow", help="grow a checkpoint's depth offline and save it elsewhere")
    grow.add_argument("path", help="the model folder (or Hub id) to grow; it is never written to")
    grow.add_argument("--to", type=int, required=True, dest="to_depth", help="the depth to grow to")
    grow.add_argument("--init", default="random", help="init of the new blocks, e.g. llama_pro, copy, random")
    grow.add_argument(
        "--out", "--output_dir", required=True, dest="out", help="folder to save the grown model (and tokenizer) to"
    )
    grow.add_argument("--overwrite_output_dir", action="store_true", help="replace a model already in --out")
    args = parser.parse_args(argv)
    try:
        if args.command == "inspect":
            print(describe(args.path))
        else:
            print(grow_checkpoint(args.path, args.to_depth, args.init, args.out, args.overwrite_output_dir))
    except (ValueError, OSError) as error:
        print(f"hf-progressive {args.command}: error: {error}", file=sys.stderr)
        return 1
    return 0


def example_script() -> str:
    """Path of ``run_clm_progressive.py`` as installed (inside the package: ``hf_progressive.examples``)."""
    from importlib import resources

    return str(resources.files("hf_progressive.examples").joinpath("run_clm_progressive.py"))


def train(arguments: list[str]) -> int:
    """``hf-progressive train ARGS``: run the example script with ``ARGS``, in this process. Returns its exit status
    (its bad-input errors are one line, status 1)."""
    import runpy

    script = example_script()
    if arguments[:1] in (["-h"], ["--help"]):
        print(f"hf-progressive train runs {script} (for several processes: accelerate launch {script} ...).\n")
    saved = sys.argv
    sys.argv = [script, *arguments]
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as exit_:
        if exit_.code in (None, 0):
            return 0
        if not isinstance(exit_.code, int):
            print(exit_.code, file=sys.stderr)
            return 1
        return exit_.code
    finally:
        sys.argv = saved
    return 0


def describe(path: str) -> str:
    """What ``hf-progressive inspect`` prints: family, depth, plan, growth lineage and compute of ``path``.

    Raises:
        ValueError: if ``path`` holds no model config (or one of a family no adapter knows).
    """
    from .adapters import adapter_for_config

    config = _load_config(path)
    adapter = adapter_for_config(config)
    metadata = progressive_metadata(config)
    depth = adapter.config_depth(config)
    lines = [
        f"{path}: {adapter.family_name(config)} ({', '.join(getattr(config, 'architectures', None) or ['?'])}), "
        f"{depth} blocks",
    ]
    if not metadata:
        lines.append("no growth recorded (not trained or grown by hf_progressive)")
        return "\n".join(lines)
    if metadata.get("depth_schedule"):
        lines.append(
            f"growth plan: depth_schedule {metadata['depth_schedule']}, growth_init {metadata.get('growth_init')}, "
            f"target depth {metadata.get('target_n_layer')}"
        )
    history = metadata.get("growth_history") or []
    lineage = [str(history[0]["from_depth"])] if history else [str(depth)]
    for event in history:
        when = OFFLINE if event.get("step") is None else f"step {event['step']}"
        lineage.append(f"{event['to_depth']} ({event.get('init')}, {when})")
    lines.append("lineage: " + " -> ".join(lineage))
    flops, fixed = metadata.get("flops"), metadata.get("flops_fixed_equivalent")
    if flops:
        saved = f", {1 - flops / fixed:.1%} saved against the run's target depth throughout" if fixed else ""
        lines.append(f"training FLOPs: {flops:.3e}" + (f" vs {fixed:.3e} at fixed depth{saved}" if fixed else ""))
    return "\n".join(lines)


def grow_checkpoint(path: str, to_depth: int, init: str, out: str, overwrite: bool = False) -> str:
    """Load ``path``, :func:`~hf_progressive.grow` it to ``to_depth`` blocks with ``init``, record the event in the
    config's growth history (step ``None``: offline) and save model and tokenizer to ``out``. Returns a summary.

    Raises:
        ValueError: for an unknown init, ``out`` being ``path`` or holding a model (without ``overwrite``), a
            path that is no model, a family no adapter knows, or a depth not above the current one.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .adapters import adapter_for_config
    from .growth import grow
    from .outputs import check_output_dir

    get_init(init)
    check_output_dir(out, overwrite=overwrite, sources=[path])
    config = _load_config(path)
    adapter = adapter_for_config(config)
    depth = adapter.config_depth(config)
    if to_depth <= depth:
        raise ValueError(f"--to {to_depth} is not above the depth of {path} ({depth} blocks): growth only adds blocks.")
    get_init(init).plan(depth, to_depth)  # e.g. a copying init on a 0-block model
    model = AutoModelForCausalLM.from_pretrained(path)
    metadata = progressive_metadata(model.config)
    target = metadata.get("target_n_layer")
    if target is not None and to_depth > target:
        update_progressive_metadata(model.config, target_n_layer=to_depth)  # a new plan goes deeper than the old one
    event = grow(model, to_depth, init=init)
    entry: dict[str, Any] = {"step": None, **{k: v for k, v in event.to_dict().items() if k != "new_parameter_names"}}
    history = list(progressive_metadata(model.config).get("growth_history") or []) + [entry]
    update_progressive_metadata(model.config, growth_history=history)
    model.save_pretrained(out)
    saved_tokenizer = ""
    if os.path.isdir(path) and any(name.startswith("tokenizer") for name in os.listdir(path)):
        AutoTokenizer.from_pretrained(path).save_pretrained(out)
        saved_tokenizer = " and its tokenizer"
    return (
        f"grew {path} from {depth} to {to_depth} blocks (init={init}; new blocks at {event.new_blocks}) and saved it"
        f"{saved_tokenizer} to {out}"
    )


def _load_config(path: str):
    from transformers import AutoConfig

    from .hub import is_hub_id

    if not os.path.exists(path) and not is_hub_id(path):
        raise ValueError(f"{path}: no such folder (and not a Hub model id).")
    if os.path.isdir(path) and not os.path.isfile(os.path.join(path, "config.json")):
        raise ValueError(f"{path} holds no config.json: not a model folder.")
    if not os.path.isdir(path) and os.path.exists(path):
        raise ValueError(f"{path} is a file, not a model folder.")
    try:
        return AutoConfig.from_pretrained(path)
    except OSError as error:
        raise ValueError(
            f"{path}: no such model folder, and not a Hub model this machine can reach ({error})."
        ) from None


if __name__ == "__main__":
    sys.exit(main())

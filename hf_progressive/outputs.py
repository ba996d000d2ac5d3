"""Where a run writes: never over a model, checkpoints or results that a user has not agreed to replace.

transformers' example scripts refused a non-empty ``output_dir`` unless told ``--overwrite_output_dir`` (or to
resume); transformers 5 dropped the flag and ``Trainer`` writes over whatever is there. A grown model can take
hours: a second run with the same default folder must not replace it silently, and a run that continues from a
model must never write into the folder it reads that model from.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

#: Files whose presence means a folder holds a trained model, its checkpoints or its results.
RUN_FILES = (
    "config.json",
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "trainer_state.json",
    "all_results.json",
    "train_results.json",
    "eval_results.json",
    "summary.json",
)


def run_contents(output_dir: str | os.PathLike) -> list[str]:
    """The model, checkpoint and result files of ``output_dir`` that a new run would replace (sorted names)."""
    output_dir = os.fspath(output_dir)
    if not os.path.isdir(output_dir):
        return []
    return sorted(
        name
        for name in os.listdir(output_dir)
        if name in RUN_FILES
        or (name.startswith(f"{PREFIX_CHECKPOINT_DIR}-") and os.path.isdir(os.path.join(output_dir, name)))
    )


def check_output_dir(
    output_dir: str | os.PathLike,
    *,
    overwrite: bool = False,
    resuming: bool = False,
    sources: Iterable[str | os.PathLike | None] = (),
) -> None:
    """Refuse to train into ``output_dir`` when that would replace a user's model or read and write one folder.

    Args:
        output_dir: where the run will save.
        overwrite: the user said ``--overwrite_output_dir``.
        resuming: the run resumes from a checkpoint (of this folder): writing there is the point.
        sources: local folders the run reads a model or tokenizer from (``--model_name_or_path``, ...); the run may
            never write into one of them, whatever the flags say.

    Raises:
        ValueError: naming the folder, what it holds and the flags that would allow the run.
    """
    target = os.path.realpath(output_dir)
    for source in sources:
        if source and os.path.isdir(source) and os.path.realpath(source) == target:
            raise ValueError(
                f"--output_dir {output_dir} is the folder the run loads its model from ({source}): saving would "
                "replace the source model. Give the run its own --output_dir."
            )
    if overwrite or resuming:
        return
    found = run_contents(output_dir)
    if found:
        checkpoints = [name for name in found if name.startswith(PREFIX_CHECKPOINT_DIR)]
        resume = " --resume_from_checkpoint last to continue its run," if checkpoints else ""
        shown = ", ".join(found[:5]) + (", ..." if len(found) > 5 else "")
        raise ValueError(
            f"--output_dir {output_dir} already holds a model or results ({shown}). Pass another --output_dir,"
            f"{resume} or --overwrite_output_dir to replace them."
        )

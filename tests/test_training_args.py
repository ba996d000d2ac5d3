import pytest
from transformers import HfArgumentParser

from hf_progressive import ProgressiveTrainingArguments


def make(**kwargs) -> ProgressiveTrainingArguments:
    return ProgressiveTrainingArguments(output_dir="unused", report_to="none", **kwargs)


def test_parsed_from_the_command_line():
    parser = HfArgumentParser(ProgressiveTrainingArguments)
    (args,) = parser.parse_args_into_dataclasses(
        [
            "--output_dir",
            "out",
            "--max_steps",
            "100",
            "--depth_schedule",
            "1@0,6@0.8",
            "--growth_init",
            "copy_inter",
            "--new_params_optimizer_state",
            "copy",
            "--report_to",
            "none",
        ]
    )
    assert (args.depth_schedule, args.growth_init, args.new_params_optimizer_state) == (
        "1@0,6@0.8",
        "copy_inter",
        "copy",
    )
    assert args.ddp_find_unused_parameters is True  # reserved blocks get no gradient before growth


def test_defaults_and_python_list_schedule():
    args = make(max_steps=10, depth_schedule=[(0, 0), (4, 0.5)])
    assert args.depth_schedule == "0@0,4@0.5"
    assert args.growth_init is None and args.new_params_optimizer_state == "fresh"
    assert make().depth_schedule is None


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(depth_schedule="0@0,6@0.8,4@0.9"), "depths must strictly increase"),
        (dict(depth_schedule="0@0;6@0.8"), "is not 'depth@step'"),
        (dict(depth_schedule="0@0,6@100", max_steps=100), "at or beyond max_steps=100"),
        (dict(depth_schedule="0@0,6@0.8", growth_init="copy"), "has 0 blocks"),
        (dict(growth_init="sideways"), "Unknown growth_init 'sideways'"),
        (dict(new_params_optimizer_state="keep"), "new_params_optimizer_state='keep' is not one of"),
        (dict(growth_init="random", new_params_optimizer_state="copy"), "needs a copying growth_init"),
        (dict(depth_schedule="0@0,6@0.8", ddp_find_unused_parameters=False), "ddp_find_unused_parameters=False"),
    ],
)
def test_bad_arguments_fail_when_built(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make(**kwargs)

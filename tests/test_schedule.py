import pytest

from hf_progressive import DepthSchedule, DepthStage, GrowthStep


def test_string_resolves_fractions_and_steps():
    schedule = DepthSchedule("0@0, 2@100 ,12@0.8")
    assert schedule.stages == (DepthStage(0, 0), DepthStage(2, 100), DepthStage(12, 0.8))
    assert schedule.resolve(1000) == [0, 100, 800]
    assert schedule.growth_steps(1000) == [GrowthStep(100, 0, 2), GrowthStep(800, 2, 12)]
    assert (schedule.initial_depth, schedule.final_depth) == (0, 12)
    assert str(schedule) == "0@0,2@100,12@0.8"


def test_list_forms_equal_string():
    expected = DepthSchedule("1@0,6@0.75")
    assert DepthSchedule([(1, 0), (6, 0.75)]) == expected
    assert DepthSchedule([{"depth": 1, "at": 0}, {"depth": 6, "at": 0.75}]) == expected
    assert DepthSchedule([DepthStage(1, 0), DepthStage(6, 0.75)]) == expected


def test_depth_at_step_boundaries():
    schedule = DepthSchedule("0@0,4@10,8@20")
    assert [schedule.depth_at(s, 100) for s in (0, 9, 10, 19, 20, 99)] == [0, 0, 4, 4, 8, 8]


def test_integral_float_step_is_a_step():
    assert DepthSchedule("0@0,6@300.0").resolve(1000) == [0, 300]


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("", "empty"),
        ("0@0,12", "'12'"),
        ("0@0,twelve@0.8", "'twelve'"),
        ("0@0,12@soon", "'soon'"),
        ("0@0,6@0.5,4@0.8", "strictly increase"),
        ("0@0,6@0.5,6@0.8", "strictly increase"),
        ("0@0,6@500,8@400", "strictly increase"),
        ("-1@0,6@0.8", "negative"),
        ("0@0,6@-5", "negative"),
        ("6@0.8", "start with a stage at step 0"),
        ("0@0,6@1.5", "float >= 1"),
    ],
)
def test_malformed_schedules_name_the_bad_value(text, fragment):
    with pytest.raises(ValueError) as error:
        DepthSchedule(text)
    assert fragment in str(error.value)


def test_depth_above_target():
    with pytest.raises(ValueError, match=r"depth 24 .* above the target depth 12"):
        DepthSchedule("0@0,24@0.8", target_depth=12)


@pytest.mark.parametrize(
    "text, max_steps, fragment",
    [
        ("0@0,6@1000", 1000, "at or beyond max_steps=1000"),
        ("0@0,6@2000", 1000, "at or beyond max_steps=1000"),
        ("0@0,6@0.0001", 1000, "only the first stage may be at step 0"),
        ("0@0,2@0.5,6@500", 1000, "strictly increase"),
        ("0@0,6@0.8", 0, "max_steps=0"),
    ],
)
def test_resolution_errors(text, max_steps, fragment):
    with pytest.raises(ValueError) as error:
        DepthSchedule(text).resolve(max_steps)
    assert fragment in str(error.value)


def test_bad_list_stage():
    with pytest.raises(ValueError, match="not a \\(depth, at\\) pair"):
        DepthSchedule([(0, 0), (1, 2, 3)])
    with pytest.raises(ValueError, match="must be an int"):
        DepthSchedule([(0, 0), (1.5, 0.5)])

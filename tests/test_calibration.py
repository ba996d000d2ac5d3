import pytest

from hf_progressive.calibration import growth_step_for, mixing_time

FIXED = {100: 3.0, 200: 2.5, 300: 2.2, 400: 2.0, 500: 1.9}


def test_mixing_time_is_first_step_that_stays_within_tolerance():
    progressive = {100: 3.3, 200: 3.4, 300: 2.3, 400: 2.01, 500: 1.905}
    assert mixing_time(progressive, FIXED, growth_step=150, tolerance=0.01) == 400 - 150
    assert mixing_time(progressive, FIXED, growth_step=150, tolerance=0.05) == 300 - 150


def test_a_run_that_dips_back_out_has_not_mixed_yet():
    progressive = {200: 2.5, 300: 2.4, 400: 2.0, 500: 1.9}
    assert mixing_time(progressive, FIXED, growth_step=150) == 400 - 150


def test_never_mixing_gives_none():
    assert mixing_time({200: 3.0, 300: 3.0}, FIXED, growth_step=150) is None


def test_growth_step_from_the_mixing_time():
    assert growth_step_for(1000, t_mix=150, warmup_steps=20) == 850
    # Never inside the decay phase.
    assert growth_step_for(1000, t_mix=50, warmup_steps=20, decay_steps=100) == 900
    with pytest.raises(ValueError, match="cannot fit a mixing time of 990 steps"):
        growth_step_for(1000, t_mix=990, warmup_steps=20)

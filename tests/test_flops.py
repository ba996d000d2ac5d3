import math

import pytest
from transformers import GPT2Config, GPT2LMHeadModel

from hf_progressive import DepthSchedule, flops

GPT2_124M = GPT2Config()  # 12 x 768, vocabulary 50257, context 1024


@pytest.mark.parametrize("depth, n_inner", [(0, None), (1, None), (3, 48)])
def test_parameter_counts_match_a_real_model(depth, n_inner):
    config = GPT2Config(n_layer=depth, n_embd=32, n_head=4, vocab_size=100, n_positions=16, n_inner=n_inner)
    model = GPT2LMHeadModel(config)
    assert flops.total_parameters(config, depth) == model.num_parameters()
    embeddings = model.transformer.wte.weight.numel() + model.transformer.wpe.weight.numel()
    assert flops.non_embedding_parameters(config, depth) == model.num_parameters() - embeddings


def test_gpt2_124m_parameter_counts():
    assert flops.total_parameters(GPT2_124M, 12) == 124_439_808
    assert round(flops.total_parameters(GPT2_124M, 0) / 1e6) == 39  # PAPER.md: the zero-layer GPT-2 is 39M


def test_paper_worked_values_zero_to_124m_at_080():
    ratios = flops.schedule_compute_ratios(GPT2_124M, DepthSchedule("0@0,12@0.8"), max_steps=1000)
    saved = ratios.saved()
    assert round(saved["all_parameters"], 2) == 0.55  # PAPER.md: saves 55% counting all parameters
    assert saved["non_embedding"] == pytest.approx(0.80, abs=0.001)  # and 80% non-embedding


def test_paper_worked_value_seven_billion():
    config = GPT2Config(n_layer=60, n_embd=3072, n_head=24)
    # PAPER.md: the zero-layer source is "0.15B". GPT-2's 50,257 tokens and 1,024 positions at width 3,072 give
    # 0.1575B (embedding 157.5M + final LayerNorm); the paper rounds down or uses a smaller table. Pinned exactly:
    assert flops.total_parameters(config, 0) == (50_257 + 1_024) * 3_072 + 2 * 3_072
    assert flops.total_parameters(config, 0) / 1e9 == pytest.approx(0.15, rel=0.06)
    assert round(flops.total_parameters(config, 60) / 1e9) == 7
    saved = flops.schedule_compute_ratios(config, DepthSchedule("0@0,60@0.8"), max_steps=1000).saved()
    assert saved["all_parameters"] == pytest.approx(0.782, abs=0.001)  # PAPER.md: "about 80% either way" at 7B
    assert saved["non_embedding"] == pytest.approx(0.80, abs=0.001)


def test_forward_flops_per_token_by_hand():
    config = GPT2Config(n_layer=2, n_embd=4, n_head=1, vocab_size=10, n_positions=8)
    block = (4 * 12 + 12) + (16 + 4) + (4 * 16 + 16) + (16 * 4 + 4) + 16  # c_attn, c_proj, c_fc, mlp c_proj, 2 LN
    assert flops.block_parameters(config) == block
    non_embedding = 2 * block + 8
    assert flops.forward_flops_per_token(config, 2, 8) == 2 * non_embedding + 2 * 4 * 10 + 2 * 2 * 8 * 4
    assert flops.training_flops_per_token(config, 2, 8) == 3 * flops.forward_flops_per_token(config, 2, 8)


def test_an_untied_lm_head_is_counted_once():
    tied = GPT2Config(n_layer=2, n_embd=4, n_head=1, vocab_size=10, n_positions=8)
    untied = GPT2Config(n_layer=2, n_embd=4, n_head=1, vocab_size=10, n_positions=8, tie_word_embeddings=False)
    assert flops.parameter_counts(untied).head == 4 * 10 and flops.parameter_counts(tied).head == 0
    assert flops.total_parameters(untied, 2) == GPT2LMHeadModel(untied).num_parameters()
    # The head's matrix product costs 2 d V per token whether or not its weight is the embedding's.
    assert flops.forward_flops_per_token(untied, 2, 8) == flops.forward_flops_per_token(tied, 2, 8)


def test_tracker_matches_schedule_ratio():
    config = GPT2Config(n_layer=0, n_embd=32, n_head=4, vocab_size=64, n_positions=16)
    schedule = DepthSchedule("0@0,2@0.5,4@0.75")
    tracker = flops.ComputeTracker(config, fixed_depth=4)
    for step in range(8):
        tracker.add(schedule.depth_at(step, 8), tokens=64, context_length=16)
    expected = flops.schedule_compute_ratios(config, schedule, 8, context_length=16).forward_flops
    assert math.isclose(tracker.ratio, expected)
    assert tracker.metrics()["compute_saved"] == pytest.approx(1 - expected)

"""One battery over every registered adapter and every init that applies (as Composer runs one battery over all
its algorithms): an adapter joins it by registering, with an ``example_model``."""

import faulthandler
import gc
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hf_progressive import INIT_STRATEGIES, current_depth, get_adapter, grow, reserve_blocks
from hf_progressive.adapters import list_adapters
from hf_progressive.adapters.registry import _ADAPTERS
from hf_progressive.inits import Keep


def enrolled() -> list[str]:
    """Every (adapter, example variant) as "name" or "name:variant"."""
    cases = []
    for name in list_adapters():
        adapter = _ADAPTERS[name]()
        for variant in adapter.example_variants:
            try:
                adapter.example_model(1, variant)
            except NotImplementedError:
                break
            cases.append(f"{name}:{variant}" if variant else name)
    return cases


ADAPTERS = enrolled()
CASES = [(name, init) for name in ADAPTERS for init in sorted(INIT_STRATEGIES)]


def example(name: str, depth: int, seed: int = 0):
    torch.manual_seed(seed)
    adapter_name, _, variant = name.partition(":")
    return _ADAPTERS[adapter_name]().example_model(depth, variant)


def tokens(seed: int = 1) -> torch.Tensor:
    return torch.randint(0, 64, (2, 12), generator=torch.Generator().manual_seed(seed))


def test_every_shipped_adapter_is_in_the_battery():
    assert "gpt2" in ADAPTERS
    assert {f"hf_decoder:{family}" for family in ("llama", "mistral", "qwen2", "qwen3", "mixtral", "gpt_neox")} <= set(
        ADAPTERS
    )


@pytest.mark.parametrize("name, init", CASES)
def test_growth_gives_the_depth_the_config_and_a_finite_forward(name, init):
    source = 0 if not INIT_STRATEGIES[init].copies else 2
    model = example(name, source)
    event = grow(model, 5, init=init)
    adapter = get_adapter(model)
    assert current_depth(model) == 5 == adapter.config_depth(model.config)
    assert event.from_depth == source and event.to_depth == 5 and len(event.new_blocks) == 5 - source
    assert torch.isfinite(model(tokens()).logits).all()


@pytest.mark.parametrize("name, init", [(n, i) for n, i in CASES if INIT_STRATEGIES[i].zero_residual])
def test_zero_residual_inits_preserve_the_function(name, init, caplog):
    """An identity, except where the layout moves trained blocks in a model whose blocks depend on their position
    (GPT-2's inverse-layer-index scaling, sliding-window layer types): then growth says it is not one."""
    model = example(name, 2)
    before = model(tokens()).logits
    slots = INIT_STRATEGIES[init].plan(2, 5)
    moves = any(isinstance(slot, Keep) and slot.source != position for position, slot in enumerate(slots))
    with caplog.at_level(logging.WARNING, logger="hf_progressive"):
        grow(model, 5, init=init)
    if moves and get_adapter(model).position_dependent(model):
        assert "NOT function-preserving" in caplog.text
    else:
        assert torch.allclose(model(tokens()).logits, before, atol=1e-5)
        assert "NOT function-preserving" not in caplog.text


@pytest.mark.parametrize("name", ADAPTERS)
def test_cached_generation_equals_a_full_forward_after_growth_that_moves_blocks(name):
    model = example(name, 2)
    grow(model, 5, init="copy_inter")  # trained blocks 0, 1 move to new positions
    prompt = tokens()
    generated = model.generate(prompt, max_new_tokens=6, do_sample=False, use_cache=True, pad_token_id=0)
    uncached = model.generate(prompt, max_new_tokens=6, do_sample=False, use_cache=False, pad_token_id=0)
    assert torch.equal(generated, uncached)


@pytest.mark.parametrize("name", ADAPTERS)
def test_moved_blocks_are_renumbered_like_a_model_built_at_the_grown_depth(name):
    # A model constructed at the grown depth numbers its blocks itself (KV-cache slots, per-position scaling such
    # as GPT-2's inverse-layer-index factor, cross-attention): growth must leave the same numbering behind.
    model = example(name, 2)
    grow(model, 5, init="copy_inter")  # trained blocks 0, 1 move to new positions
    adapter = get_adapter(model)
    built = adapter.model_from_config(model.config).eval()
    built.load_state_dict(model.state_dict())
    assert torch.equal(built(tokens()).logits, model(tokens()).logits)


@pytest.mark.parametrize("name", ADAPTERS)
def test_reserved_blocks_take_no_gradient_and_keep_their_identity(name):
    model = example(name, 0)
    reserve_blocks(model, final_depth=3)
    reserved = get_adapter(model).reserved_blocks(model)
    model(tokens(), labels=tokens()).loss.backward()
    assert all(p.grad is None for block in reserved for p in block.parameters())
    identities = [id(p) for block in reserved for p in block.parameters()]
    grow(model, 3, init="random")
    assert [id(p) for block in get_adapter(model).blocks(model) for p in block.parameters()] == identities


@pytest.mark.slow
@pytest.mark.parametrize("name", ADAPTERS)
def test_a_grown_model_reloads_in_a_process_that_never_imports_hf_progressive(name, tmp_path):
    model = example(name, 1)
    grow(model, 3, init="copy")
    model.save_pretrained(tmp_path)
    expected = model(tokens()).logits[0, -1, :4].tolist()
    script = (
        "import json, sys, torch\n"
        "from transformers import AutoModelForCausalLM\n"
        f"model = AutoModelForCausalLM.from_pretrained({str(tmp_path)!r}).eval()\n"
        f"ids = torch.tensor({tokens().tolist()})\n"
        "print(json.dumps({'logits': model(ids).logits[0, -1, :4].tolist(),\n"
        "                  'imported': 'hf_progressive' in sys.modules}))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True)
    reloaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert not reloaded["imported"]
    assert reloaded["logits"] == pytest.approx(expected, abs=1e-5)


def _reduce_in_every_phase(rank: int, init_file: str, results: str, name: str) -> None:
    """DDP with the reserve-aware comm hook, in the shallow (all reserved), mixed (reserve partly emptied) and fully
    grown phases, with and without gradient_as_bucket_view, two backward passes each: every active gradient is the
    mean of the processes' gradients, no reserved parameter gets one, and only active gradients are communicated."""
    import copy

    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from hf_progressive.distributed import register_reserve_aware_comm_hook

    # A collective that one process never joins would hang the suite: show where, and end the process instead.
    faulthandler.dump_traceback_later(90, exit=True)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    verdicts = {}
    all_reduce = dist.all_reduce
    for depth in (0, 1, 3):
        for bucket_view in (False, True):
            model = example(name, 0)
            reserve_blocks(model, 3)
            if depth:
                grow(model, depth, init="random")
            reference = copy.deepcopy(model)
            # Small buckets: whichever way DDP groups reserved and active parameters, only active ones may be sent.
            wrapped = DistributedDataParallel(
                model, find_unused_parameters=True, bucket_cap_mb=0.01, gradient_as_bucket_view=bucket_view
            )
            assert register_reserve_aware_comm_hook(wrapped, model)
            reserved_names = {n for n, p in model.named_parameters() if "progressive_reserve" in n}
            checks = []
            for step in range(2):
                batch = tokens(seed=10 * rank + step)  # different data per process
                reduced = []

                def counting_all_reduce(tensor, *args, _reduced=reduced, **kwargs):
                    _reduced.append(tensor.numel())
                    return all_reduce(tensor, *args, **kwargs)

                dist.all_reduce = counting_all_reduce
                try:
                    wrapped.zero_grad(set_to_none=True)
                    wrapped(input_ids=batch, labels=batch).loss.backward()
                finally:
                    dist.all_reduce = all_reduce
                reference.zero_grad(set_to_none=True)
                reference(input_ids=batch, labels=batch).loss.backward()
                expected = {}
                for n, p in reference.named_parameters():
                    if p.grad is not None:
                        all_reduce(p.grad)
                        expected[n] = p.grad / 2
                gradients = dict(model.named_parameters())
                active = {n: p.grad for n, p in gradients.items() if n not in reserved_names}
                checks.append(
                    {
                        "active_match": all(torch.allclose(active[n], expected[n], atol=1e-6) for n in active),
                        "reserved_without_gradient": all(gradients[n].grad is None for n in reserved_names),
                        "only_active_sent": depth == 3 or sum(reduced) == sum(g.numel() for g in active.values()),
                    }
                )
            verdicts[f"depth {depth}, gradient_as_bucket_view={bucket_view}"] = checks
            # Free each DDP wrapper (its reducer and hook) while the process group is alive: freeing them at exit,
            # after the group is gone, intermittently blocked the process.
            del wrapped, model, reference
            gc.collect()
    Path(results, f"{rank}.json").write_text(json.dumps(verdicts))
    dist.barrier()
    dist.destroy_process_group()


@pytest.mark.parametrize("name", ADAPTERS)
def test_ddp_comm_hook_reduces_exactly_the_active_gradients_in_every_phase(name, tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_reduce_in_every_phase, args=(str(tmp_path / "init"), str(tmp_path), name), nprocs=2)
    for rank in (0, 1):
        verdicts = json.loads((tmp_path / f"{rank}.json").read_text())
        assert len(verdicts) == 6
        for phase, checks in verdicts.items():
            for step, check in enumerate(checks):
                assert all(check.values()), (phase, step, check)


def _dataset(vocab_size: int):
    from datasets import Dataset

    ids = torch.randint(0, vocab_size, (48, 12), generator=torch.Generator().manual_seed(0)).tolist()
    return Dataset.from_dict({"input_ids": ids, "labels": ids})


def _arguments(output_dir):
    from hf_progressive import ProgressiveTrainingArguments

    return ProgressiveTrainingArguments(
        output_dir=str(output_dir), max_steps=8, per_device_train_batch_size=4, learning_rate=1e-2,
        depth_schedule="1@0,3@0.5", growth_init="copy", lr_scheduler_type="warmup_stable_decay", warmup_steps=1,
        logging_steps=1, save_strategy="steps", save_steps=1, report_to="none", seed=0, disable_tqdm=True,
        use_cpu=True,
    )  # fmt: skip


@pytest.mark.parametrize("name", ADAPTERS)
def test_resume_before_at_and_after_growth_matches_the_uninterrupted_run(name, tmp_path):
    import shutil

    from hf_progressive import ProgressiveTrainer

    def losses(trainer, after=0):
        return {e["step"]: e["loss"] for e in trainer.state.log_history if "loss" in e and e["step"] > after}

    data = _dataset(example(name, 1).config.vocab_size)
    uninterrupted = ProgressiveTrainer(model=example(name, 1), args=_arguments(tmp_path / "full"), train_dataset=data)
    uninterrupted.train()
    assert [e["step"] for e in uninterrupted.growth_history] == [4]
    # transformers 5 saves some families under converted weight names (GPT-NeoX's head as embed_out, Mixtral's
    # experts expert by expert) that Trainer's own resume does not convert back; hf_progressive loads them with
    # transformers' conversion, so those families resume exactly too.
    for step in (3, 4, 6):  # before growth, the growth step itself (saved before the model grows), after it
        resumed_dir = tmp_path / f"resumed-{step}"
        shutil.copytree(tmp_path / "full" / f"checkpoint-{step}", resumed_dir / f"checkpoint-{step}")
        resumed = ProgressiveTrainer(model=example(name, 1), args=_arguments(resumed_dir), train_dataset=data)
        resumed.train(resume_from_checkpoint=True)
        assert losses(resumed, after=step) == pytest.approx(losses(uninterrupted, after=step), rel=1e-6), step
        assert get_adapter(resumed.model).depth(resumed.model) == 3

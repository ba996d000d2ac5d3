import copy

import pytest
import torch
from conftest import tiny_model, token_dataset
from torch import nn
from transformers.pytorch_utils import Conv1D

from hf_progressive import ProgressiveTrainer, ProgressiveTrainingArguments
from hf_progressive.adapters.base import RESERVE_ATTRIBUTE
from hf_progressive.optim import MuonNSGD, UpdateRamp, conv1d_lr_correction, muon_nsgd_param_groups

LR, WD, MOMENTUM = 0.1, 0.05, 0.9


def test_normalised_sgd_matches_a_direct_computation():
    torch.manual_seed(0)
    parameter = nn.Parameter(torch.randn(5))
    expected = parameter.detach().clone()
    optimizer = MuonNSGD([{"params": [parameter], "algorithm": "nsgd"}], lr=LR, weight_decay=WD, momentum=MOMENTUM)
    buffer = torch.zeros(5)
    for _ in range(3):
        gradient = torch.randn(5)
        parameter.grad = gradient.clone()
        optimizer.step()
        # By hand: EMA momentum, Nesterov look-ahead, decoupled decay, step of length lr along the unit update.
        buffer = MOMENTUM * buffer + (1 - MOMENTUM) * gradient
        update = MOMENTUM * buffer + (1 - MOMENTUM) * gradient
        expected = expected * (1 - LR * WD) - LR * update / update.norm()
        assert torch.allclose(parameter, expected, atol=1e-6)
    assert (parameter.detach() - expected).abs().max() < 1e-6


def test_muon_on_conv1d_equals_torch_muon_on_the_linear_layout():
    torch.manual_seed(0)
    module = Conv1D(12, 4)  # GPT-2 layout: weight is (in=4, out=12), like a fused c_attn of width 4
    linear_weight = nn.Parameter(module.weight.detach().T.clone())  # what nn.Linear(4, 12) would store
    groups = muon_nsgd_param_groups(module, lr=LR, weight_decay=WD, transposed_weight_types=(Conv1D,))
    groups = [g for g in groups if g["algorithm"] == "muon"]
    optimizer = MuonNSGD(groups, lr=LR, momentum=MOMENTUM)
    reference = torch.optim.Muon([linear_weight], lr=LR, weight_decay=WD, momentum=MOMENTUM)
    for _ in range(3):
        gradient = torch.randn(4, 12)
        module.weight.grad, linear_weight.grad = gradient.clone(), gradient.T.clone()
        optimizer.step()
        reference.step()
        assert torch.allclose(module.weight, linear_weight.T, atol=1e-6)
    assert conv1d_lr_correction(module.weight) == pytest.approx(3**0.5)


@pytest.mark.parametrize("transposed", [True, False], ids=["conv1d", "linear"])
def test_split_fused_muon_equals_torch_muon_on_q_k_v_as_separate_matrices(transposed):
    torch.manual_seed(0)
    width = 4
    module = Conv1D(3 * width, width) if transposed else nn.Linear(width, 3 * width, bias=False)
    module.weight.data.normal_()
    # What modded-nanogpt does: Q, K and V as three nn.Linear(width, width) weights of their own.
    as_linear = module.weight.detach().T if transposed else module.weight.detach()
    parts = [nn.Parameter(piece.clone()) for piece in as_linear.split(width, dim=0)]
    groups = [
        {"params": [module.weight], "algorithm": "muon", "split": {"parts": [1, 1, 1], "dim": 1 if transposed else 0}}
    ]
    optimizer = MuonNSGD(groups, lr=LR, weight_decay=WD, momentum=MOMENTUM)
    reference = torch.optim.Muon(parts, lr=LR, weight_decay=WD, momentum=MOMENTUM)
    for _ in range(3):
        gradient = torch.randn(3 * width, width)  # in nn.Linear's (out, in) layout
        module.weight.grad = gradient.T.clone() if transposed else gradient.clone()
        for part, piece in zip(parts, gradient.split(width, dim=0)):
            part.grad = piece.clone()
        optimizer.step()
        reference.step()
        grown = module.weight.detach().T if transposed else module.weight.detach()
        assert torch.allclose(grown, torch.cat([p.detach() for p in parts]), atol=1e-6)


def test_split_fused_puts_gpt2_qkv_in_a_split_group_and_only_it():
    model = tiny_model(2)
    groups = muon_nsgd_param_groups(model, lr=LR, weight_decay=WD, split_fused=True)
    split = [g for g in groups if "split" in g]
    names = {id(p): name for name, p in model.named_parameters()}
    assert len(split) == 1 and split[0]["split"] == {"parts": [1, 1, 1], "dim": 1}
    assert sorted(names[id(p)] for p in split[0]["params"]) == [f"transformer.h.{i}.attn.c_attn.weight" for i in (0, 1)]
    assert split[0]["lr"] == LR  # each (d x d) part is square: Muon's shape factor is 1
    whole = muon_nsgd_param_groups(model, lr=LR, weight_decay=WD)
    assert not any("split" in g for g in whole)
    assert sum(len(g["params"]) for g in whole) == sum(len(g["params"]) for g in groups)


def test_muon_update_is_orthogonalised():
    torch.manual_seed(0)
    weight = nn.Parameter(torch.zeros(8, 8))
    optimizer = MuonNSGD([{"params": [weight], "algorithm": "muon"}], lr=1.0, weight_decay=0.0, momentum=0.0)
    gradient = torch.randn(8, 8) @ torch.diag(torch.logspace(-1, 0, 8))
    weight.grad = gradient.clone()
    optimizer.step()
    singular_values = torch.linalg.svdvals(-weight.detach())
    gradient_values = torch.linalg.svdvals(gradient)
    # Newton-Schulz pushes every singular value towards 1 (Muon's quintic lands them in roughly [0.5, 1.5]).
    assert singular_values.min() > 0.3 and singular_values.max() < 1.6
    assert singular_values.max() / singular_values.min() < (gradient_values.max() / gradient_values.min()) / 5


def test_param_groups_of_gpt2():
    model = tiny_model(2)
    names = {id(p): n for n, p in model.named_parameters()}
    decay = [n for n in names.values() if not n.endswith("bias") and "ln" not in n]
    groups = muon_nsgd_param_groups(model, lr=1.0, weight_decay=WD, decay_parameter_names=decay)
    by_name = {names[id(p)]: g for g in groups for p in g["params"]}
    assert groups[0]["algorithm"] == "nsgd" and groups[0]["lr"] == 1.0
    assert by_name["transformer.h.0.attn.c_attn.weight"]["algorithm"] == "muon"
    assert by_name["transformer.h.0.attn.c_attn.weight"]["lr"] == pytest.approx(3**0.5)
    assert by_name["transformer.h.0.mlp.c_fc.weight"]["lr"] == pytest.approx(2.0)
    assert by_name["transformer.h.0.mlp.c_proj.weight"]["lr"] == pytest.approx(0.5)
    assert by_name["transformer.h.1.attn.c_proj.weight"]["lr"] == pytest.approx(1.0)
    for name in ("transformer.wte.weight", "transformer.wpe.weight", "transformer.h.0.ln_1.weight"):
        assert by_name[name]["algorithm"] == "nsgd", name
    assert by_name["transformer.h.0.attn.c_attn.bias"]["weight_decay"] == 0.0
    # Every weight decays by lr * weight_decay, whatever its LR factor.
    for group in groups:
        if group["weight_decay"]:
            assert group["lr"] * group["weight_decay"] == pytest.approx(WD)
    assert len(by_name) == len(names)  # each parameter once (the tied LM head is the embedding)
    switched = muon_nsgd_param_groups(model, lr=1.0, weight_decay=WD, muon_embeddings=True)
    assert {names[id(p)] for g in switched if g["algorithm"] == "muon" for p in g["params"]} >= {
        "transformer.wte.weight",
        "transformer.wpe.weight",
    }


def test_state_dict_round_trip_continues_identically(tokens):
    def make(model):
        return MuonNSGD(muon_nsgd_param_groups(model, lr=0.05, weight_decay=WD), lr=0.05)

    def train(model, optimizer, steps):
        for _ in range(steps):
            model(tokens, labels=tokens).loss.backward()
            optimizer.step()
            optimizer.zero_grad()

    model = tiny_model(1)
    optimizer = make(model)
    train(model, optimizer, 2)
    resumed_model = copy.deepcopy(model)
    resumed = make(resumed_model)
    resumed.load_state_dict(copy.deepcopy(optimizer.state_dict()))  # as if through torch.save and torch.load
    train(model, optimizer, 2)
    train(resumed_model, resumed, 2)
    for a, b in zip(model.parameters(), resumed_model.parameters()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("split_fused", [False, True], ids=["whole", "split_fused"])
def test_trainer_with_muon_nsgd_through_growth(tmp_path, split_fused):
    model = tiny_model(0)
    args = ProgressiveTrainingArguments(
        muon_split_fused=split_fused,
        output_dir=str(tmp_path),
        max_steps=8,
        per_device_train_batch_size=4,
        learning_rate=0.02,
        optim="muon_nsgd",
        depth_schedule="0@0,2@0.5",
        lr_scheduler_type="warmup_stable_decay",
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
    )
    trainer = ProgressiveTrainer(model=model, args=args, train_dataset=token_dataset())
    new = [p for block in getattr(model.transformer, RESERVE_ATTRIBUTE) for p in block.parameters()]
    before = [p.detach().clone() for p in new]
    trainer.train()
    optimizer = trainer.optimizer.optimizer if hasattr(trainer.optimizer, "optimizer") else trainer.optimizer
    assert isinstance(optimizer, MuonNSGD)
    assert any("split" in group for group in optimizer.param_groups) == split_fused
    assert all(p in optimizer.state for p in new)  # joined at growth, with fresh momentum
    assert all(not torch.equal(p, q) for p, q in zip(new, before))
    logged = [e["learning_rate"] for e in trainer.state.log_history if "learning_rate" in e]
    assert logged[2] == pytest.approx(0.02)  # the shared LR is what Trainer logs
    assert model.config.n_layer == 2


def test_row_normalised_sgd_moves_every_row_by_the_learning_rate():
    torch.manual_seed(0)
    embedding = nn.Parameter(torch.randn(6, 4))
    start = embedding.detach().clone()
    optimizer = MuonNSGD([{"params": [embedding], "algorithm": "nsgd"}], lr=LR, weight_decay=0.0, nsgd_norm="row")
    gradient = torch.randn(6, 4) * torch.logspace(-3, 0, 6).unsqueeze(1)  # rows of very different scale
    gradient[2] = 0.0  # a token absent from the batch
    embedding.grad = gradient
    optimizer.step()
    moved = (embedding.detach() - start).norm(dim=1)
    expected = torch.full((6,), LR)
    expected[2] = 0.0
    assert torch.allclose(moved, expected, atol=1e-6)
    # Each row moves against its own gradient direction.
    direction = -(embedding.detach() - start)[0]
    assert torch.allclose(direction / direction.norm(), gradient[0] / gradient[0].norm(), atol=1e-5)


def test_tensor_normalised_sgd_moves_the_whole_tensor_by_the_learning_rate():
    torch.manual_seed(0)
    embedding = nn.Parameter(torch.randn(6, 4))
    start = embedding.detach().clone()
    optimizer = MuonNSGD([{"params": [embedding], "algorithm": "nsgd"}], lr=LR, weight_decay=0.0, nsgd_norm="tensor")
    embedding.grad = torch.randn(6, 4)
    optimizer.step()
    assert (embedding.detach() - start).norm().item() == pytest.approx(LR, rel=1e-5)


def test_unknown_nsgd_norm_is_refused():
    with pytest.raises(ValueError, match="nsgd_norm 'columns'.*tensor.*row"):
        MuonNSGD([nn.Parameter(torch.zeros(2))], nsgd_norm="columns")
    with pytest.raises(ValueError, match="nsgd_norm='columns'"):
        ProgressiveTrainingArguments(output_dir="unused", optim="muon_nsgd", nsgd_norm="columns")


@pytest.mark.parametrize("algorithm", ["adamw", "muon", "nsgd"])
def test_update_ramp_is_a_learning_rate_warmup_of_its_parameters(algorithm):
    torch.manual_seed(0)
    ramped, other = nn.Parameter(torch.randn(4, 4)), nn.Parameter(torch.randn(4, 4))
    reference = nn.Parameter(ramped.detach().clone())

    def make(parameters):
        if algorithm == "adamw":
            return torch.optim.AdamW(parameters, lr=LR, weight_decay=WD)
        return MuonNSGD([{"params": parameters, "algorithm": algorithm}], lr=LR, weight_decay=WD)

    optimizer, reference_optimizer = make([ramped, other]), make([reference])
    ramp = UpdateRamp(optimizer, [ramped], steps=4)
    untouched = other.detach().clone()
    for step in range(1, 7):
        gradient = torch.randn(4, 4)
        ramped.grad, reference.grad, other.grad = gradient.clone(), gradient.clone(), torch.randn(4, 4)
        # The reference gets the ramp as an LR factor: step k of 4 at k/4, then the full LR.
        for group in reference_optimizer.param_groups:
            group["lr"] = LR * min(1.0, step / 4)
        optimizer.step()
        reference_optimizer.step()
        assert torch.allclose(ramped, reference, atol=1e-6), step
        # Other parameters of the optimizer take their full step.
        assert not torch.allclose(other, untouched)
        untouched = other.detach().clone()
    assert not ramp.active and ramp._handles == []


@pytest.mark.parametrize("split_fused", [False, True], ids=["whole", "split_fused"])
def test_mixtral_experts_are_orthogonalised_expert_by_expert_and_routers_normalised(split_fused):
    """Each expert's matrix of a 3-D expert weight steps as torch.optim.Muon steps it as a parameter of its own (and,
    with split_fused, gate and up as two); the router goes to normalised SGD."""
    from hf_progressive.adapters.hf_decoder import example_decoder

    torch.manual_seed(0)
    model = example_decoder("mixtral", 1)
    experts = model.model.layers[0].mlp.experts
    groups = muon_nsgd_param_groups(model, lr=LR, weight_decay=WD, split_fused=split_fused)
    algorithm = {id(p): g for g in groups for p in g["params"]}
    assert algorithm[id(model.model.layers[0].mlp.gate.weight)]["algorithm"] == "nsgd"
    for weight, parts in ((experts.gate_up_proj, [1, 1] if split_fused else [1]), (experts.down_proj, [1])):
        group = algorithm[id(weight)]
        assert group["algorithm"] == "muon" and group["split"] == {"parts": parts, "dim": 0, "experts": True}
        # The reference: every expert's matrix (and every part of it) as an nn.Linear weight of its own.
        pieces = [piece for matrix in weight.detach() for piece in matrix.chunk(len(parts), dim=0)]
        reference_weights = [nn.Parameter(piece.clone()) for piece in pieces]
        optimizer = MuonNSGD([{**group, "params": [weight]}], lr=LR, weight_decay=WD, momentum=MOMENTUM)
        reference = torch.optim.Muon(reference_weights, lr=LR, weight_decay=WD, momentum=MOMENTUM)
        for _ in range(3):
            gradient = torch.randn_like(weight)
            gradient[1] = 0.0  # an expert no token was routed to this step
            weight.grad = gradient.clone()
            for part, piece in zip(reference_weights, [p for m in gradient for p in m.chunk(len(parts), dim=0)]):
                part.grad = piece.clone()
            optimizer.step()
            reference.step()
            stepped = [piece for matrix in weight.detach() for piece in matrix.chunk(len(parts), dim=0)]
            for got, expected in zip(stepped, reference_weights):
                assert torch.allclose(got, expected.detach(), atol=1e-6)
        assert torch.isfinite(weight).all()


def test_muon_nsgd_grows_a_mixtral_and_trains_its_new_experts(tmp_path):
    from hf_progressive.adapters.hf_decoder import example_decoder

    torch.manual_seed(0)
    model = example_decoder("mixtral", 0).train()
    args = ProgressiveTrainingArguments(
        output_dir=str(tmp_path), max_steps=8, per_device_train_batch_size=4, learning_rate=0.02, optim="muon_nsgd",
        depth_schedule="0@0,2@0.5", lr_scheduler_type="warmup_stable_decay", logging_steps=1, save_strategy="no",
        report_to="none", disable_tqdm=True, use_cpu=True,
    )  # fmt: skip
    trainer = ProgressiveTrainer(model=model, args=args, train_dataset=token_dataset())
    reserve = getattr(model.model, RESERVE_ATTRIBUTE)
    experts = [block.mlp.experts.down_proj for block in reserve]
    before = [p.detach().clone() for p in experts]
    trainer.train()
    optimizer = trainer.optimizer.optimizer if hasattr(trainer.optimizer, "optimizer") else trainer.optimizer
    per_expert = [g for g in optimizer.param_groups if g.get("split", {}).get("experts")]
    assert {id(p) for p in experts} <= {id(p) for g in per_expert for p in g["params"]}
    assert all(p in optimizer.state and not torch.equal(p, q) for p, q in zip(experts, before))
    assert model.config.num_hidden_layers == 2
    assert all(torch.isfinite(torch.tensor(e["loss"])) for e in trainer.state.log_history if "loss" in e)

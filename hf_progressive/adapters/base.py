"""What growth needs to know about an architecture family, and nothing else."""

from __future__ import annotations

import contextlib
import copy
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

RESERVE_ATTRIBUTE = "progressive_reserve"

#: What a parameter is to the optimizer (see :meth:`BlockStackAdapter.parameter_roles`): a weight matrix, a vector
#: (norm gains, biases), an input embedding (a tied LM head is one), an untied output head, an MoE router, or MoE
#: experts stored as one 3-D parameter.
PARAMETER_ROLES = ("matrix", "vector", "embedding", "head", "router", "expert")


@dataclass(frozen=True)
class ParameterCounts:
    """Parameters of a model family at one width, counted from its real modules (built on the meta device)."""

    #: One block of the stack.
    block: int
    #: Token and position embeddings (the tied LM head is the token embedding).
    embedding: int
    #: Everything else outside the stack: final norm, an untied LM head.
    other: int
    #: The untied LM head's share of ``other`` (0 when the head is the token embedding).
    head: int = 0


@dataclass(frozen=True)
class CardSpec:
    """What the model card of a grown model of this family says about it."""

    tags: tuple[str, ...]
    pipeline_tag: str
    template: str
    #: How the card names the family ("GPT-2", "Llama").
    family: str = ""
    #: The class the card says the checkpoint loads as; default: the model's own class.
    architecture: str | None = None


class BlockStackAdapter(ABC):
    """Adapter between :func:`hf_progressive.grow` and one architecture family.

    An adapter says where the stack of repeated blocks lives, how to build and initialise one more block, how
    to renumber blocks after the stack changed, and which weights write into the residual stream.

    Blocks that are allocated before they enter the stack (see :func:`hf_progressive.reserve_blocks`) live in
    a ``ModuleList`` called ``progressive_reserve`` beside the stack. The forward pass never runs them, so they
    receive no gradient and no optimizer state until growth moves them into the stack.
    """

    #: Short name used in messages and metadata, e.g. ``"gpt2"``; the registry's key.
    name: str = ""
    #: Adapters are tried from the highest priority down (a specific family before a generic one).
    priority: int = 0
    #: ``config.model_type`` values of this family, to find the adapter from a config alone (FLOP accounting).
    model_types: tuple[str, ...] = ()
    #: Config field holding the number of blocks the model runs.
    depth_field: str = "n_layer"
    #: Config fields that must agree between a checkpoint and the model that resumes from it.
    architecture_fields: tuple[str, ...] = ()
    #: Module types whose weight is stored ``(in, out)``, the transpose of ``nn.Linear`` (the optimizer's LR rule).
    transposed_weight_types: tuple[type, ...] = ()
    #: Tags, pipeline tag and template of the model card.
    card: CardSpec = CardSpec(tags=(), pipeline_tag="", template="")
    #: Config fields holding one entry per block (e.g. ``layer_types``), kept as long as the depth (see
    #: :meth:`set_config_depth`).
    per_layer_fields: tuple[str, ...] = ()
    #: Parameter-name suffixes of MoE routers, and of experts stored as 3-D parameters (see :meth:`parameter_roles`).
    router_suffixes: tuple[str, ...] = ()
    expert_suffixes: tuple[str, ...] = ()
    #: Fused projections, by parameter-name suffix: the relative sizes of their consecutive parts along the output
    #: dimension (GPT-2's ``attn.c_attn.weight`` is Q|K|V side by side: ``(1, 1, 1)``), so an optimizer can treat
    #: each part as its own matrix (``muon_split_fused``). Layouts that interleave the parts per head (GPT-NeoX's
    #: ``query_key_value``) cannot be said this way: leave them out.
    fused_projections: Mapping[str, tuple[int, ...]] = {}

    @classmethod
    @abstractmethod
    def matches(cls, model: nn.Module) -> bool:
        """Whether this adapter handles ``model``."""

    @abstractmethod
    def stack_owner(self, model: nn.Module) -> tuple[nn.Module, str]:
        """The module that holds the block stack, and the attribute name of the stack on it."""

    @abstractmethod
    def build_block(self, model: nn.Module, position: int, init_depth: int) -> nn.Module:
        """A new block for ``position``, initialised by :meth:`initialize_block`, on the device and dtype of
        ``model``."""

    @torch.no_grad()
    def initialize_block(self, model: nn.Module, block: nn.Module, init_depth: int) -> None:
        """Re-initialise ``block`` in place as a model with ``init_depth`` blocks initialises its blocks.

        The default is for transformers models: the model's own ``_init_weights``, with the config saying
        ``init_depth`` blocks (GPT-2 scales residual projections by ``1/sqrt(2 * n_layer)``: the depth the block is
        meant for, never the current one, which may be 0). Tensors loaded by ``from_pretrained`` carry an "already
        initialised" flag that transformers' init functions respect; it is cleared, this is a re-init.
        """
        for tensor in block.parameters():
            tensor._is_hf_initialized = False
        with config_depth(model.config, self.depth_field, max(init_depth, 1)):
            block.apply(model._init_weights)

    @abstractmethod
    def renumber(self, model: nn.Module) -> None:
        """Make every block (and reserved block) know its position, e.g. for its KV-cache slot."""

    def position_dependent(self, model: nn.Module) -> bool:
        """Whether a block computes something else at another position (beyond its KV-cache slot): then a block
        that growth moves changes the model's function, and inits that zero the new blocks' outputs are identities
        only for layouts that keep the trained blocks in place. Default: no."""
        return False

    @abstractmethod
    def residual_output_projections(self, block: nn.Module) -> list[nn.Module]:
        """The layers whose output is added to the residual stream; zeroing them makes ``block`` an identity."""

    def residual_output_parameters(self, block: nn.Module) -> list[nn.Parameter]:
        """The parameters whose zeroing makes ``block`` an identity (what the ``zero`` inits zero and
        ``residual_scale`` scales): by default those of :meth:`residual_output_projections`. A family whose
        residual outputs are not whole modules (Mixtral's experts are one 3-D parameter) overrides this."""
        return [p for module in self.residual_output_projections(block) for p in module.parameters()]

    @abstractmethod
    def hidden_size(self, config: Any) -> int:
        """Width of the residual stream."""

    @abstractmethod
    def context_length(self, config: Any) -> int | None:
        """Longest sequence the model takes (``None`` for models without one, e.g. a ResNet)."""

    @abstractmethod
    def model_from_config(self, config: Any) -> nn.Module:
        """A model of this family built from ``config`` (called on the meta device, to count parameters)."""

    @abstractmethod
    def block_from_config(self, config: Any) -> nn.Module:
        """One block of the stack built from ``config`` (called on the meta device, to count parameters)."""

    #: Variants of :meth:`example_model` the contract battery runs (e.g. one per model type of a multi-family
    #: adapter).
    example_variants: tuple[str, ...] = ("",)

    def family_name(self, config: Any) -> str:
        """How a model card names the family of ``config``: :attr:`CardSpec.family`, else its ``model_type``."""
        return self.card.family or getattr(config, "model_type", "model")

    def example_model(self, depth: int, variant: str = "") -> nn.Module:
        """A tiny, randomly initialised model of this family with ``depth`` blocks (of one of
        :attr:`example_variants`), for the shared contract tests (``tests/test_adapter_contract.py``): registering an
        adapter that implements it enrols it there."""
        raise NotImplementedError(f"{type(self).__name__} has no example_model(): it is not in the contract battery.")

    @classmethod
    def matches_config(cls, config: Any) -> bool:
        """Whether ``config`` describes a model of this family."""
        return getattr(config, "model_type", None) in cls.model_types

    # Shared behaviour ---------------------------------------------------------------------------------------

    def set_config_depth(self, model: nn.Module, depth: int) -> None:
        """Record the number of active blocks in ``model.config`` (see :meth:`write_depth`)."""
        self.write_depth(model.config, depth)

    def write_depth(self, config: Any, depth: int) -> None:
        """Set the depth of ``config``, and keep each of :attr:`per_layer_fields` one entry per block: cut to the
        depth, or extended by :meth:`per_layer_value` (configs such as Qwen's validate ``len(layer_types) ==
        num_hidden_layers`` when saved)."""
        for field_name in self.per_layer_fields:
            values = getattr(config, field_name, None)
            if values is None:
                continue
            values = list(values)[:depth]
            values += [self.per_layer_value(config, field_name, position) for position in range(len(values), depth)]
            setattr(config, field_name, values)
        setattr(config, self.depth_field, depth)

    def check_depth(self, config: Any, depth: int, start: int | None = None) -> None:
        """Fail, before anything trains, if ``config`` cannot describe ``depth`` blocks, or -- starting at ``start``
        blocks -- would describe them differently from how it describes them now: per-layer fields (see
        :meth:`per_layer_value`) are cut to the starting depth and continued by the family's rule at growth, so a
        pattern that rule does not produce would silently change. ``config`` is not changed.

        Raises:
            ValueError: naming the field, its value and the depth.
        """
        trial = copy.deepcopy(config)
        try:
            if start is not None:
                self.write_depth(trial, start)
            self.write_depth(trial, depth)
        except ValueError as error:
            starting = f" starting at {start}" if start is not None else ""
            raise ValueError(f"{type(config).__name__} cannot grow to {depth} blocks{starting}: {error}") from None
        for field_name in self.per_layer_fields:
            values = getattr(config, field_name, None)
            if values is None:
                continue
            known = min(len(values), depth)
            grown = list(getattr(trial, field_name))[:known]
            if grown != list(values)[:known]:
                raise ValueError(
                    f"{type(config).__name__}.{field_name}={list(values)} would not survive starting at {start} "
                    f"blocks: growth continues it by the config class's rule, as {grown}. Give a pattern that rule "
                    "produces (set the class's own options instead of the list) or one value for every layer."
                )

    def per_layer_value(self, config: Any, field_name: str, position: int) -> Any:
        """The entry of per-layer field ``field_name`` for a block new at ``position``. By default the field's value
        when it is the same for every block; a family with a pattern (e.g. every sixth layer global) overrides
        this.

        Raises:
            ValueError: when the entries differ and the family does not say how the pattern continues.
        """
        values = list(getattr(config, field_name))
        if values and all(value == values[0] for value in values):
            return values[0]
        raise ValueError(
            f"{type(self).__name__} cannot extend config.{field_name}={values} to position {position}: its entries "
            "differ and the adapter does not override per_layer_value() to say how the pattern continues."
        )

    def stacks(self, model: nn.Module) -> dict[str, tuple[nn.Module, str]]:
        """Every growable stack of blocks, by name: ``(owner module, attribute)``. A decoder has one (``"blocks"``,
        from :meth:`stack_owner`); a family with several (a ResNet's stages) overrides this."""
        return {"blocks": self.stack_owner(model)}

    def parameter_roles(self, model: nn.Module) -> dict[str, str]:
        """The role (one of :data:`PARAMETER_ROLES`) of every parameter of ``model``, by name as in
        ``model.named_parameters()``: what an optimizer routes by (see
        :func:`hf_progressive.optim.muon_nsgd_param_groups`).

        Found from the modules, not from names, except for routers and experts (:attr:`router_suffixes`,
        :attr:`expert_suffixes`): a parameter of an ``nn.Embedding`` is an embedding (a tied LM head included), the
        weight of ``model.get_output_embeddings()`` otherwise the head, any other parameter of two or more
        dimensions a matrix, the rest vectors.
        """
        return classify_parameters(model, self.router_suffixes, self.expert_suffixes)

    def config_depth(self, config: Any) -> int:
        """The depth recorded in ``config`` (a config object or a ``config.json`` dict)."""
        value = config.get(self.depth_field) if isinstance(config, Mapping) else getattr(config, self.depth_field)
        return int(value)

    def parameter_counts(self, config: Any) -> ParameterCounts:
        """Parameters of one block, of the embeddings and of the rest, counted from modules built on the meta
        device from ``config`` (so a family needs no closed form, and nothing is allocated)."""
        shell_config = copy.deepcopy(config)
        self.write_depth(shell_config, 0)
        with torch.device("meta"):
            shell = self.model_from_config(shell_config)
            block = self.block_from_config(config)
        embedding_ids, head_ids = embedding_and_head_ids(shell)
        unique = {id(p): p for p in shell.parameters()}  # a tied weight once
        embedding = sum(p.numel() for key, p in unique.items() if key in embedding_ids)
        other = sum(p.numel() for key, p in unique.items() if key not in embedding_ids)
        head = sum(p.numel() for key, p in unique.items() if key in head_ids and key not in embedding_ids)
        return ParameterCounts(
            block=sum(p.numel() for p in block.parameters()), embedding=embedding, other=other, head=head
        )

    def forward_flops_per_token(self, config: Any, counts: ParameterCounts, depth: int, context_length: int) -> int:
        """Forward FLOPs per token of a model of ``depth`` blocks with parameter ``counts`` (see
        :mod:`hf_progressive.flops`). The default is a decoder LM's ``2 N_nonemb + 2 d V + 2 depth n_ctx d``
        (PAPER.md): block and other matrices, the LM head's product (tied or not: an untied head's parameters are
        not counted twice) and attention scores. A family of another shape (a ResNet) overrides it."""
        d = self.hidden_size(config)
        matrices = depth * counts.block + counts.other - counts.head
        return 2 * matrices + 2 * d * config.vocab_size + 2 * depth * context_length * d

    def blocks(self, model: nn.Module) -> nn.ModuleList:
        owner, attribute = self.stack_owner(model)
        return getattr(owner, attribute)

    def depth(self, model: nn.Module) -> int:
        return len(self.blocks(model))

    def reserve(self, model: nn.Module) -> nn.ModuleList:
        """The reserve of pre-allocated blocks, created empty on first use."""
        owner, _ = self.stack_owner(model)
        if not hasattr(owner, RESERVE_ATTRIBUTE):
            owner.add_module(RESERVE_ATTRIBUTE, BlockReserve())
        return getattr(owner, RESERVE_ATTRIBUTE)

    def reserved_blocks(self, model: nn.Module) -> list[nn.Module]:
        """The reserved blocks, in the order they will enter the stack (empty if the model has no reserve)."""
        owner, _ = self.stack_owner(model)
        return list(getattr(owner, RESERVE_ATTRIBUTE, ()))


class BlockReserve(nn.ModuleList):
    """The ``ModuleList`` of reserved blocks.

    ``Trainer`` calls ``model.train()`` on every step, and the default recursion into every module of every
    reserved block was the largest part of the shallow phase's overhead over a plain model. Reserved blocks never
    run, so their mode is irrelevant until growth, which gives each block the stack's mode as it enters
    (:func:`hf_progressive.grow`).
    """

    #: Whether the blocks were reserved for a trainer that has not claimed them yet (a ``ProgressiveGPT2LMHeadModel``
    #: reserves its blocks at construction): training it with anything else warns that nothing will grow them.
    awaiting_trainer: bool = False

    def train(self, mode: bool = True) -> BlockReserve:
        self.training = mode
        return self


def trainable_block(block: nn.Module) -> nn.Module:
    """The module that trains for ``block``: ``block`` itself, or the trainable copy inside a PEFT
    ``ModulesToSaveWrapper`` (how the blocks growth adds to a PEFT-wrapped model train in full and are saved with
    the adapter; found without importing peft)."""
    copies = getattr(block, "modules_to_save", None)
    active = getattr(block, "active_adapters", None)
    if isinstance(copies, nn.ModuleDict) and active and active[0] in copies:
        return copies[active[0]]
    return block


def is_tuner_layer(module: nn.Module) -> bool:
    """Whether ``module`` is a PEFT tuner layer (``peft.tuners.tuners_utils.BaseTunerLayer``: a LoRA layer and the
    like), recognised without importing peft."""
    return callable(getattr(module, "get_base_layer", None)) and callable(getattr(module, "merge", None))


def remove_tuner_layers(module: nn.Module, merge: bool) -> int:
    """Replace every PEFT tuner layer (LoRA and the like, recognised without importing peft) inside ``module`` by its
    base layer, in place; with ``merge``, each adapter is merged into its base layer first (what the layer computes),
    otherwise dropped. Returns the number of layers replaced."""
    replaced = 0
    for name, child in list(module.named_modules()):
        if is_tuner_layer(child):
            if merge:
                child.merge()
            parent_name, _, attribute = name.rpartition(".")
            setattr(module.get_submodule(parent_name) if parent_name else module, attribute, child.get_base_layer())
            replaced += 1
    return replaced


def embedding_and_head_ids(model: nn.Module) -> tuple[set[int], set[int]]:
    """Ids of the parameters of ``model``'s ``nn.Embedding`` modules (a tied LM head's weight among them), and of
    ``model.get_output_embeddings()``'s parameters (empty for a model without one)."""
    embeddings = {
        id(p) for module in model.modules() if isinstance(module, nn.Embedding) for p in module.parameters(False)
    }
    head = model.get_output_embeddings() if callable(getattr(model, "get_output_embeddings", None)) else None
    return embeddings, ({id(p) for p in head.parameters()} if isinstance(head, nn.Module) else set())


def classify_parameters(
    model: nn.Module, router_suffixes: tuple[str, ...] = (), expert_suffixes: tuple[str, ...] = ()
) -> dict[str, str]:
    """:meth:`BlockStackAdapter.parameter_roles` for any model (also one no adapter knows)."""
    embeddings, head_ids = embedding_and_head_ids(model)
    roles = {}
    for name, parameter in model.named_parameters():
        if has_suffix(name, router_suffixes):
            roles[name] = "router"
        elif has_suffix(name, expert_suffixes):
            roles[name] = "expert"
        elif id(parameter) in embeddings:
            roles[name] = "embedding"
        elif id(parameter) in head_ids and parameter.ndim >= 2:
            roles[name] = "head"
        else:
            roles[name] = "matrix" if parameter.ndim >= 2 else "vector"
    return roles


def has_suffix(name: str, suffixes: Iterable[str]) -> bool:
    """Whether the dotted parameter name ``name`` ends with one of ``suffixes`` at a dot (``attn.c_attn.weight``
    matches ``h.0.attn.c_attn.weight``, not ``h.0.crossattn.c_attn.weight``)."""
    return any(name == suffix or name.endswith("." + suffix) for suffix in suffixes)


def replace_contents(module_list: nn.ModuleList, modules: list[nn.Module]) -> None:
    """Refill ``module_list`` in place, so that references to the list itself stay valid."""
    del module_list[:]
    module_list.extend(modules)


@contextlib.contextmanager
def config_depth(config, attribute: str, depth: int) -> Iterator[None]:
    """Temporarily set ``config.<attribute>`` to ``depth``, e.g. so a model's own ``_init_weights`` scales
    residual projections for the target depth rather than the current one."""
    saved = getattr(config, attribute)
    setattr(config, attribute, depth)
    try:
        yield
    finally:
        setattr(config, attribute, saved)

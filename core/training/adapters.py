"""The one backbone that the policy, the reference and the reward model share, and its adapters.

Everything RLHF needs is a set of LoRA adapters on ONE copy of the weights (a ``peft.PeftModel``
around the policy's model), switched by choosing which adapters are active:

- the policy: the starting model's own adapter(s), frozen (a parent version's or SFT's), plus
  PPO's adapter ``"ppo"`` on top, trainable;
- the reference: the same with ``"ppo"`` switched off (the starting model, exactly);
- the reward model: only its own adapter (``"reward"``, then ``"reward_1"``... when there are
  several) on the base weights, with a scalar head held beside the model;
- a plain policy (no adapter at all) is the PeftModel with no adapter active.

The active set outside a ``using`` block is always the policy's, so prediction and generation give
what the policy gives; ``using(names)`` switches for one block and restores the previous set and
the previous ``requires_grad`` flags. Nothing here copies a parameter.

LoRA goes on the language model only: a multimodal model's vision tower and projector never get
an adapter (their features are then the same in every mode, so PPO may compute them once per
rollout, and no backward pass runs through them).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

POLICY_ADAPTER = "default"  # what a version's ``adapter/`` folder holds (peft's top-level name)
PPO_ADAPTER = "ppo"
REWARD_ADAPTER = "reward"
_FOLDED = "folded"
# Module-name parts that mark the image side of a multimodal model.
_VISION_PARTS = ("vision_tower", "vision_model", "multi_modal_projector", "visual", "image_encoder")


def is_peft(model: Any) -> bool:
    """Whether ``model`` is a ``peft.PeftModel`` (carries named adapters)."""
    return hasattr(model, "peft_config") and hasattr(model, "base_model")


def is_reward_adapter(name: str) -> bool:
    """Whether the adapter ``name`` is a reward model's (never saved as the policy's)."""
    return name == REWARD_ADAPTER or name.startswith(REWARD_ADAPTER + "_")


def policy_adapters(model: Any) -> list[str]:
    """The adapters that belong to the policy (everything but the reward models'), in order."""
    if not is_peft(model):
        return []
    return [n for n in model.peft_config if not is_reward_adapter(n)]


def active_adapters(model: Any) -> list[str]:
    """The adapters the model's next forward pass applies."""
    if not is_peft(model):
        return []
    active = model.base_model.active_adapter
    return [active] if isinstance(active, str) else list(active)


def free_name(model: Any, stem: str) -> str:
    """``stem``, or ``stem_1``, ``stem_2``... whichever the model does not hold yet."""
    taken = set(model.peft_config) if is_peft(model) else set()
    if stem not in taken:
        return stem
    i = 1
    while f"{stem}_{i}" in taken:
        i += 1
    return f"{stem}_{i}"


def _is_vision(module_name: str) -> bool:
    return any(part in module_name.split(".") for part in _VISION_PARTS)


def language_model_targets(model: Any, names: Sequence[str], like: Any = None) -> list[str] | str:
    """The full names of the modules called ``names`` (last name part) in the language model.

    A text model's LoRA targets are just ``names``; for a multimodal model the vision tower and
    projector are left out by naming every language-model module explicitly. With ``like`` (an
    existing adapter's ``target_modules``) given as a regex, a regex matching exactly those
    modules is returned, because peft folds adapters only when their targets have one type.
    """
    inner = model.get_base_model() if is_peft(model) else model
    wanted = set(names)
    found = sorted(
        n
        for n, _ in inner.named_modules()
        if n.split(".")[-1] in wanted and not _is_vision(n) and "lora_" not in n
    )
    multimodal = any(_is_vision(n) for n, _ in inner.named_modules())
    if isinstance(like, str):
        return "|".join(re.escape(n) for n in found) if multimodal else _suffix_regex(names)
    return found if multimodal else list(names)


def lora(
    r: int,
    alpha: int,
    dropout: float,
    targets: Sequence[str] | str,
    task_type: str | None = "CAUSAL_LM",
) -> Any:
    """A plain ``peft.LoraConfig`` (no bias, no ``modules_to_save``) on ``targets``: a list of
    module names or a regex (see ``language_model_targets``)."""
    from peft import LoraConfig

    return LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=targets if isinstance(targets, str) else list(targets),
        task_type=task_type,
        bias="none",
    )


def image_side_adapted(model: Any) -> bool:
    """Whether any adapter sits in a multimodal model's vision tower or projector (then image
    features differ between adapter sets and must not be computed once for all)."""
    if not is_peft(model):
        return False
    return any("lora_" in n and _is_vision(n) for n, _ in model.named_parameters())


def _suffix_regex(names: Sequence[str]) -> str:
    return r".*\.(" + "|".join(re.escape(n) for n in names) + ")"


def attach(policy: Any, name: str, config: Any) -> None:
    """Add the LoRA adapter ``name`` (``config``, a ``peft.LoraConfig``) to ``policy.model``,
    wrapping a plain model in a PeftModel. The active adapters stay as they were (none for a
    model that had no adapter), and the new adapter's weights start frozen.

    Raises:
        ValueError: the model already holds an adapter called ``name``.
    """
    from peft import get_peft_model

    model = policy.model
    if is_peft(model):
        if name in model.peft_config:
            raise ValueError(f"the model already holds an adapter named {name!r}")
        before = active_adapters(model)
        model.add_adapter(name, config)
        set_active(model, before)
        return
    if config.task_type is None:
        config.task_type = "CAUSAL_LM"  # the PeftModel class that generates like the policy
    wrapped = get_peft_model(model, config, adapter_name=name)
    set_active(wrapped, [])
    policy.model = wrapped


def load(policy: Any, name: str, folder: Any) -> None:
    """Load the adapter saved in ``folder`` (peft's format, safetensors) onto ``policy.model``
    as ``name``, frozen; the active adapters stay as they were (none for a plain model)."""
    from peft import PeftModel

    model = policy.model
    if is_peft(model):
        before = active_adapters(model)
        model.load_adapter(str(folder), adapter_name=name, is_trainable=False)
        set_active(model, before)
        return
    wrapped = PeftModel.from_pretrained(model, str(folder), adapter_name=name, is_trainable=False)
    set_active(wrapped, [])
    policy.model = wrapped


def set_active(model: Any, names: Sequence[str], trainable: Sequence[str] = ()) -> None:
    """Make ``names`` the active adapters (``[]``: none, the bare weights); only the adapters in
    ``trainable`` get gradients. Keeps peft's own bookkeeping pointing at an existing adapter."""
    tuner = model.base_model
    tuner.set_adapter(list(names), inference_mode=True)
    if model.active_adapter not in model.peft_config:  # peft reads its config on every forward
        model.active_adapter = next(iter(model.peft_config))
    marks = tuple(f".{n}." for n in trainable)
    if marks:
        for pname, param in model.named_parameters():
            if "lora_" in pname and any(m in pname for m in marks):
                param.requires_grad_(True)


@contextmanager
def using(model: Any, names: Sequence[str], trainable: Sequence[str] = ()) -> Iterator[None]:
    """Within the block the model applies exactly the adapters ``names``; afterwards the previous
    active set and ``requires_grad`` flags are back (also after an exception)."""
    if not is_peft(model):
        if names:
            raise ValueError(f"the model holds no adapter, cannot use {list(names)}")
        yield
        return
    before = active_adapters(model)
    grads = {n: p.requires_grad for n, p in model.named_parameters() if "lora_" in n}
    set_active(model, names, trainable)
    try:
        yield
    finally:
        set_active(model, before)
        for pname, param in model.named_parameters():
            if pname in grads:
                param.requires_grad_(grads[pname])


def delete(policy: Any, name: str) -> None:
    """Remove the adapter ``name``; the active set is kept (less ``name``). When no adapter is
    left the PeftModel is unwrapped, so ``policy.model`` is the plain model again (same weights)."""
    model = policy.model
    if not is_peft(model) or name not in model.peft_config:
        return
    keep = [n for n in active_adapters(model) if n != name]
    if len(model.peft_config) == 1:
        policy.model = model.unload()
        return
    set_active(model, keep)  # switched off first: peft would pick another to switch on
    model.delete_adapter(name)
    set_active(model, keep)


def can_stack(model: Any) -> bool:
    """Whether the policy's adapter(s) can stay on, frozen, under a new adapter that is later
    folded into them exactly: plain LoRA (no DoRA, rsLoRA, ``modules_to_save``) with targets."""
    names = policy_adapters(model)
    if not names:
        return False
    for name in names:
        cfg = model.peft_config[name]
        if getattr(cfg, "peft_type", None) is None or str(cfg.peft_type.value) != "LORA":
            return False
        if cfg.use_dora or cfg.use_rslora or cfg.modules_to_save or not cfg.target_modules:
            return False
    return True


def fold(model: Any, names: Sequence[str]) -> None:
    """Replace the adapters ``names`` by one adapter ``"default"`` equal to their sum, active
    and frozen. ``B1 s1 A1 + B2 s2 A2 = [B1 B2][s1 A1; s2 A2]``: peft's ``cat`` combination
    (rank ``r1 + r2``), exact for LoRA; then a one-adapter ``linear`` copy renames it (weight 1:
    A and B copied, the scaling folded into A). Other adapters (a reward model's) are kept.

    Raises:
        ValueError: ``names`` is empty.
    """
    if not names:
        raise ValueError("no adapters to fold")
    tuner = model.base_model
    if list(names) != [POLICY_ADAPTER]:
        tuner.add_weighted_adapter(list(names), [1.0] * len(names), _FOLDED, combination_type="cat")
        set_active(model, [])  # none active while deleting: peft would pick another to switch on
        for name in names:
            model.delete_adapter(name)
        tuner.add_weighted_adapter([_FOLDED], [1.0], POLICY_ADAPTER, combination_type="linear")
        set_active(model, [])
        model.delete_adapter(_FOLDED)
    model.active_adapter = POLICY_ADAPTER
    set_active(model, [POLICY_ADAPTER])


def backbone_storages(*modules: Any) -> dict[int, int]:
    """``{storage address: bytes}`` of every parameter of ``modules`` that is not an adapter's
    (LoRA): what "one copy of the backbone" counts (heads, e.g. PPO's value head, are included)."""
    out: dict[int, int] = {}
    for module in modules:
        for name, param in module.named_parameters():
            if "lora_" in name:
                continue
            storage = param.untyped_storage()
            out[storage.data_ptr()] = storage.nbytes()
    return out

"""Optimiser parameter groups: one learning rate for pretrained weights, another for modules trained from
scratch, and no weight decay where decay only hurts.

Weight decay follows open_clip's rule, decided by a parameter's type and shape rather than by its name:
biases, the gains of every norm (LayerNorm, GroupNorm, BatchNorm, RMSNorm: all 1-d) and any other parameter
with fewer than 2 dimensions get none, and neither does the InfoNCE logit scale (decay would pull the
temperature towards 1). Weight matrices, convolutions and embedding tables (token and position, 2-d) decay,
as in CLIP and open_clip.
"""

from __future__ import annotations

from torch import nn

from diffdis.model.unet import LogitScale

_NORMS = (nn.LayerNorm, nn.GroupNorm, nn.RMSNorm, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def decays(owner: nn.Module, param: nn.Parameter) -> bool:
    """Whether `param`, held directly by `owner`, gets weight decay."""
    return param.ndim >= 2 and not isinstance(owner, (*_NORMS, LogitScale))


def parameter_groups(
    modules: dict[str, tuple[nn.Module, bool]],  # name -> (module, pretrained?)
    learning_rate: float,  # pretrained weights
    scratch_learning_rate: float | None,  # modules trained from scratch; None: learning_rate
    weight_decay: float,
) -> list[dict]:
    """torch.optim param groups "pretrained/decay", "pretrained/no_decay", "scratch/decay", "scratch/no_decay",
    each with its "name", "lr" and "weight_decay"; empty groups dropped.

    Only parameters with requires_grad, each exactly once: a parameter reached from several entries belongs to
    the first, so {"discriminator": (model.discriminator, False), "model": (model, True)} means "the
    discriminator from scratch, the rest of the model pretrained".
    """
    scratch = learning_rate if scratch_learning_rate is None else scratch_learning_rate
    groups = {}
    for origin, lr in (("pretrained", learning_rate), ("scratch", scratch)):
        groups[f"{origin}/decay"] = {"name": f"{origin}/decay", "params": [], "lr": lr, "weight_decay": weight_decay}
        groups[f"{origin}/no_decay"] = {"name": f"{origin}/no_decay", "params": [], "lr": lr, "weight_decay": 0.0}
    seen: set[int] = set()
    for module, pretrained in modules.values():
        origin = "pretrained" if pretrained else "scratch"
        for owner in module.modules():
            for param in owner.parameters(recurse=False):
                if param.requires_grad and id(param) not in seen:
                    seen.add(id(param))
                    groups[f"{origin}/{'decay' if decays(owner, param) else 'no_decay'}"]["params"].append(param)
    return [group for group in groups.values() if group["params"]]

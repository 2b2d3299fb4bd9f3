"""The networks' layers as a table: what the Model pages show of G and D."""
from __future__ import annotations

import copy

import torch


def _settings(layer: torch.nn.Module) -> str:
    if isinstance(layer, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
        return f"{layer.in_channels}→{layer.out_channels}, k{layer.kernel_size[0]} s{layer.stride[0]} p{layer.padding[0]}"
    if isinstance(layer, torch.nn.BatchNorm2d):
        return f"{layer.num_features} channels"
    if isinstance(layer, torch.nn.LeakyReLU):
        return f"slope {layer.negative_slope}"
    return ""


def layer_table(module: torch.nn.Module, example: torch.Tensor) -> list[dict]:
    """One row per leaf layer: name, type, settings, output shape (from one forward pass of `example`) and parameters."""
    module = copy.deepcopy(module)  # hooks on a private copy: a cached model is shared with other sessions
    rows: list[dict] = []
    hooks = []
    for name, layer in module.named_modules():
        if list(layer.children()):
            continue

        def hook(layer, inputs, output, name=name):
            rows.append(
                {
                    "layer": name,
                    "type": type(layer).__name__,
                    "settings": _settings(layer),
                    "output": " × ".join(str(s) for s in tuple(output.shape)[1:]) or "1",
                    "parameters": sum(p.numel() for p in layer.parameters()),
                }
            )

        hooks.append(layer.register_forward_hook(hook))
    try:
        with torch.no_grad():  # loaded models are in eval mode and stay so
            module(example)
    finally:
        for h in hooks:
            h.remove()
    return rows

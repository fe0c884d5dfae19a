"""Reuse the committed vision trunk: read its weights back from an exported graph, so that a retrain of the
ITM and captioner heads (`tools/train_shapes.py --reuse-trunk`) skips the trunk pretraining and keeps the
exact trunk the committed shapes-clip was trained on."""
from __future__ import annotations

from pathlib import Path

import onnx
import torch
from onnx import numpy_helper

from . import nets


def trunk_from_onnx(graph: Path) -> nets.VisionTrunk:
    """The trunk's five convolutions are the graph's first five Conv nodes, batch norm folded into their
    weights and biases at export; the norm layers come back as identities (mean 0, variance 1 - eps, scale 1,
    shift = the folded bias), which computes the same function."""
    model = onnx.load(str(graph))
    weights = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in model.graph.initializer}
    convs = [n for n in model.graph.node if n.op_type == 'Conv'][:5]
    trunk = nets.VisionTrunk()
    layers = [layer for layer in trunk.layers]
    if len(convs) != len(layers):
        raise SystemExit(f'{graph}: expected {len(layers)} Conv nodes for the trunk, found {len(convs)}')
    with torch.no_grad():
        for node, (conv, bn, _) in zip(convs, layers):
            w, b = weights[node.input[1]], weights[node.input[2]]
            if tuple(w.shape) != tuple(conv.weight.shape):
                raise SystemExit(f'{graph}: Conv {node.name} has weights {tuple(w.shape)}, expected {tuple(conv.weight.shape)}')
            conv.weight.copy_(w)
            bn.weight.fill_(1.0)
            bn.bias.copy_(b)
            bn.running_mean.zero_()
            bn.running_var.fill_(1.0 - bn.eps)
    trunk.eval()
    for p in trunk.parameters():
        p.requires_grad_(False)
    return trunk


def weights_from_onnx(wrapper: torch.nn.Module, args: tuple, graph: Path, inputs: list[str], outputs: list[str],
                      axes: dict) -> dict[str, torch.Tensor]:
    """The weights of a committed graph as a state dict of `wrapper` (an export wrapper such as
    nets.CaptionDecoder around a model of the same architecture). The exporter folds transposes into
    weights and names those `onnx::MatMul_<n>`; exporting a copy of the wrapper whose every parameter
    holds distinct random values gives, name by name, which parameter (transposed or not) each
    initializer of the committed graph is. The two graphs are matched by the order of their initializers,
    not by name: the numbers in `onnx::MatMul_<n>` count every parameter of the wrapped model, so a
    training-only head added since the commit shifts them. Parameters the graph does not hold as one
    initializer (the trunk's convolutions, whose batch norm is folded in) are left out: see `trunk_from_onnx`."""
    import tempfile

    from .export import onnx_export

    probe = {name: torch.randn_like(p) for name, p in wrapper.state_dict().items() if p.dtype == torch.float32}
    saved = {k: v.clone() for k, v in wrapper.state_dict().items()}
    wrapper.load_state_dict({**saved, **probe})
    with tempfile.TemporaryDirectory() as tmp:
        onnx_export(wrapper, args, Path(tmp) / 'probe.onnx', inputs, outputs, axes)
        fresh = [torch.from_numpy(numpy_helper.to_array(i).copy())
                 for i in onnx.load(str(Path(tmp) / 'probe.onnx')).graph.initializer]
    wrapper.load_state_dict(saved)
    committed = [torch.from_numpy(numpy_helper.to_array(i).copy()) for i in onnx.load(str(graph)).graph.initializer]
    if [t.shape for t in fresh] != [t.shape for t in committed]:
        raise SystemExit(f'{graph}: its weights do not have the shapes of this architecture; was it exported by '
                         'another version of tools/shapes_models/nets.py?')
    out: dict[str, torch.Tensor] = {}
    for value, stored in zip(fresh, committed):
        for name, p in probe.items():
            if p.shape == value.shape and torch.equal(p, value):
                out[name] = stored
            elif p.dim() == 2 and p.t().shape == value.shape and torch.equal(p.t(), value):
                out[name] = stored.t().contiguous()
    return out


def _layer_count(graph: Path, prefix: str) -> int:
    names = [i.name for i in onnx.load(str(graph)).graph.initializer if i.name.startswith(prefix)]
    return len({n[len(prefix):].split('.')[0] for n in names})


def committed_captioner(folder: Path) -> dict[str, torch.Tensor]:
    """The weights of the committed shapes-captioner (the trunk left out), as a nets.Captioner state dict."""
    layers = _layer_count(folder / 'onnx' / 'decoder_model.onnx', 'cap.blocks.')
    cap = nets.Captioner(41, 32, layers=layers)
    b = 'batch_size'
    px = torch.zeros(2, 3, 64, 64)
    weights = weights_from_onnx(nets.CaptionEncoder(cap), (px,), folder / 'onnx' / 'encoder_model.onnx',
                                ['pixel_values'], ['last_hidden_state'], {'pixel_values': {0: b}, 'last_hidden_state': {0: b}})
    with torch.no_grad():
        enc = cap.encode(px)
    ids = torch.tensor([[39, 3, 17], [39, 3, 30]])
    present = [f'present.{i}.{kv}' for i in range(layers) for kv in ('key', 'value')]
    weights.update(weights_from_onnx(nets.CaptionDecoder(cap), (ids, enc), folder / 'onnx' / 'decoder_model.onnx',
                                     ['input_ids', 'encoder_hidden_states'], ['logits', *present],
                                     {'input_ids': {0: b, 1: 't'}, 'encoder_hidden_states': {0: b}, 'logits': {0: b, 1: 't'}}))
    return {k.removeprefix('cap.'): v for k, v in weights.items()}


def committed_itm(folder: Path) -> dict[str, torch.Tensor]:
    """The weights of the committed shapes-itm (the trunk and the training-only heads left out)."""
    layers = _layer_count(folder / 'onnx' / 'itm_fusion.onnx', 'itm.blocks.')
    itm = nets.ItmModel(41, 32, layers=layers)
    b = 'batch_size'
    px = torch.zeros(2, 3, 64, 64)
    weights = weights_from_onnx(nets.ItmVision(itm), (px,), folder / 'onnx' / 'itm_vision.onnx', ['pixel_values'],
                                ['image_embeds'], {'pixel_values': {0: b}, 'image_embeds': {0: b}})
    with torch.no_grad():
        image = itm.encode_image(px)
    ids = torch.tensor([[39, 3, 17], [39, 3, 30]])
    weights.update(weights_from_onnx(nets.ItmFusion(itm), (image, ids, torch.ones_like(ids)), folder / 'onnx' / 'itm_fusion.onnx',
                                     ['image_embeds', 'input_ids', 'attention_mask'], ['itm_logits'],
                                     {'image_embeds': {0: b}, 'input_ids': {0: b, 1: 't'}, 'attention_mask': {0: b, 1: 't'},
                                      'itm_logits': {0: b}}))
    return {k.removeprefix('itm.'): v for k, v in weights.items()}


def warm_start(model: torch.nn.Module, weights: dict[str, torch.Tensor]) -> list[str]:
    """Load `weights` into `model` where they fit; transformer blocks the weights do not have start as
    identities (the output projections of their attention and MLP zeroed, so the residual stream passes
    through unchanged until training moves them). Returns the parameter names that start fresh."""
    model.load_state_dict(weights, strict=False)
    fresh = [k for k in model.state_dict() if k not in weights and not k.startswith('trunk.')]
    with torch.no_grad():
        for i, blk in enumerate(model.blocks):
            if any(k.startswith(f'blocks.{i}.') for k in weights):
                continue
            for layer in (blk.attn.out, blk.cross.out if blk.cross is not None else None, blk.mlp[2]):
                if layer is not None:
                    layer.weight.zero_()
                    layer.bias.zero_()
    return fresh

"""Small real blocks of torchvision's token models (a ViT encoder block, Swin blocks with
shifted and with padded windows, a Swin-V2 block, a ConvNeXt block), seeded, exported with
TorchScript at opset 17 inside a tiny classifier, against the token reference
(tests/reference/tokens.py: LayerNorm statistics and attention probabilities detached) to 1e-4
of max |R|, under both per-token linear rules and both initial maps; batch = per sample,
logits unchanged."""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import onnx
import pytest

import aeq_onnx
from tests.rules.token_scaffold import compare_tokens

torch = pytest.importorskip("torch")
vision = pytest.importorskip("torchvision.models")

DIM = 8


class _Classifier(torch.nn.Module):  # type: ignore[misc,name-defined]
    """embedding (a per-token layer; a 1x1 conv for the ConvNeXt block) -> block -> mean over
    the token axes -> 3 logits."""

    def __init__(self, block: object, channels_first: bool) -> None:
        super().__init__()
        self.block, self.channels_first = block, channels_first
        self.embed = (torch.nn.Conv2d(DIM, DIM, 1) if channels_first
                      else torch.nn.Linear(DIM, DIM))
        self.fc = torch.nn.Linear(DIM, 3)

    def forward(self, x: object) -> object:
        y = self.block(self.embed(x))
        axes = (2, 3) if self.channels_first else tuple(range(1, y.dim() - 1))
        return self.fc(y.mean(axes))


def _vit() -> object:
    from torchvision.models.vision_transformer import EncoderBlock
    return EncoderBlock(2, DIM, 16, 0.0, 0.0)


def _swin() -> object:
    from torchvision.models.swin_transformer import SwinTransformerBlock
    return SwinTransformerBlock(DIM, 2, [2, 2], [1, 1])


def _swin_padded() -> object:
    from torchvision.models.swin_transformer import SwinTransformerBlock
    return SwinTransformerBlock(DIM, 2, [3, 3], [1, 1])  # 4x4 tokens padded to 6x6 windows


def _swin_v2() -> object:
    from torchvision.models.swin_transformer import SwinTransformerBlockV2
    return SwinTransformerBlockV2(DIM, 2, [2, 2], [1, 1])


def _convnext() -> object:
    from torchvision.models.convnext import CNBlock
    return CNBlock(DIM, 0.1, 0.0)


#: block, input shape per sample, channels first, the token axes of the split
BLOCKS: dict[str, tuple[Callable[[], object], tuple[int, ...], bool, tuple[int, ...]]] = {
    "vit-encoder-block": (_vit, (5, DIM), False, (1,)),
    "swin-shifted-window-block": (_swin, (4, 4, DIM), False, (1, 2)),
    "swin-padded-window-block": (_swin_padded, (4, 4, DIM), False, (1, 2)),
    "swin-v2-block": (_swin_v2, (4, 4, DIM), False, (1, 2)),
    "convnext-block": (_convnext, (DIM, 6, 6), True, (2, 3)),
}


def _export(name: str) -> tuple[onnx.ModelProto, np.ndarray]:
    make, shape, channels_first, _ = BLOCKS[name]
    torch.manual_seed(0)
    net = _Classifier(make(), channels_first).eval()
    x = np.random.default_rng(1).standard_normal((3, *shape)).astype(np.float32)
    buffer = io.BytesIO()
    torch.onnx.export(net, (torch.from_numpy(x),), buffer, opset_version=17, dynamo=False,
                      input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "N"}, "y": {0: "N"}})
    model = onnx.load_from_string(buffer.getvalue())
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
    return model, x, want  # type: ignore[return-value]


@pytest.mark.parametrize("name", list(BLOCKS))
@pytest.mark.parametrize(("linear", "initial"), [("conservative", "elementwise"),
                                                 ("equilibrium", "channel-mean")])
def test_block_matches_the_token_reference(name: str, linear: str, initial: str) -> None:
    model, x, want = _export(name)  # type: ignore[misc]
    split = {p.key: p.value for p in aeq_onnx.compile_explainer(model).metadata_props}[
        "aeq_onnx.split"]
    out = compare_tokens(model, x, split, initial=initial, linear=linear,
                         token_axes=BLOCKS[name][3])
    np.testing.assert_allclose(out["logits"], want, rtol=1e-4, atol=1e-5)

"""Test networks: MTCNN with its real weights, and small random models.

Every builder returns a new model in eval mode with deterministic weights, and
draws its random numbers from a forked generator, so the global torch seed is
left as it was. The ``*_INPUT_SHAPE`` constants give an input each model
accepts.

The MTCNN face detector has three stages: PNet proposes face windows on a
12x12 grid, RNet refines 24x24 crops and ONet scores 48x48 crops and places
five landmarks. Its pretrained weights ship as state-dict files in the
``facenet-pytorch`` 2.6.0 wheel. That wheel requires ``torch<2.3``, so it is
installed with ``--no-deps`` and never imported here: the files are found
through the distribution's metadata. The architectures below are written from
the keys and shapes in those files.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.metadata
import pathlib
from collections.abc import Callable, Sequence

import pytest
import torch
import torch.nn.functional as F
from torch import nn

#: PyPI distribution that ships the MTCNN weight files.
FACENET_DISTRIBUTION = "facenet-pytorch"

#: Command that installs those files without pulling in an old torch.
FACENET_INSTALL_COMMAND = "pip install --no-deps facenet-pytorch==2.6.0"

#: SHA-256 of the weight files in the facenet-pytorch 2.6.0 wheel.
MTCNN_SHA256 = {
    "pnet": "a2a71925e0b9996a42f63e47efc1ca19043e69558b5c523b978d611dfae49c8f",
    "rnet": "bbb937de72efc9ef83b186c49f5f558467a1d7e3453a8ece0d71a886633f6a86",
    "onet": "165bfbe42940416ccfb977545cf0e976d5bf321f67083ae2aaaa5c764280118d",
}

#: Input shapes (batch, RGB, height, width). PNet is fully convolutional and
#: accepts any size of at least 12x12, so its shape here is a small image.
PNET_INPUT_SHAPE = (2, 3, 24, 30)
RNET_INPUT_SHAPE = (2, 3, 24, 24)
ONET_INPUT_SHAPE = (2, 3, 48, 48)

RESNET_INPUT_SHAPE = (2, 3, 32, 32)
VIT_INPUT_SHAPE = (2, 3, 16, 16)
SMALL_CNN_INPUT_SHAPE = (2, 3, 8, 8)
FUNCTIONAL_NET_INPUT_SHAPE = (4, 6)
MIXED_NET_INPUT_SHAPE = (2, 5, 8)

#: Token-id input of :func:`tiny_gpt2`: (batch, sequence length).
GPT2_INPUT_SHAPE = (2, 12)
GPT2_VOCAB_SIZE = 100
GPT2_MAX_POSITIONS = 64


def random_input(
    shape: Sequence[int], seed: int = 0, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Draw a standard normal tensor of the given shape from its own generator."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(tuple(shape), generator=generator, dtype=dtype)


def random_token_ids(
    shape: Sequence[int] = GPT2_INPUT_SHAPE,
    seed: int = 0,
    vocab_size: int = GPT2_VOCAB_SIZE,
) -> torch.Tensor:
    """Draw int64 token ids uniformly from ``range(vocab_size)``."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab_size, tuple(shape), generator=generator)


def _seeded(seed: int, build: Callable[[], nn.Module]) -> nn.Module:
    # fork_rng restores the global generator afterwards, so building a fixture
    # never changes the random numbers a test draws later.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build()
    return model.eval()


# --------------------------------------------------------------------------
# MTCNN


class PNet(nn.Module):
    """MTCNN proposal network: 12x12 windows, applied as a convolution.

    ``forward`` maps ``(N, 3, H, W)`` images, scaled to about [-1, 1], to
    ``(probabilities, boxes)``: face and non-face probabilities of shape
    ``(N, 2, H', W')`` with ``H' = ceil((H - 2) / 2) - 4`` (channel 1 is "face")
    and box offsets of shape ``(N, 4, H', W')``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 10, kernel_size=3)
        self.prelu1 = nn.PReLU(10)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(10, 16, kernel_size=3)
        self.prelu2 = nn.PReLU(16)
        self.conv3 = nn.Conv2d(16, 32, kernel_size=3)
        self.prelu3 = nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, kernel_size=1)
        self.conv4_2 = nn.Conv2d(32, 4, kernel_size=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.prelu2(self.conv2(x))
        x = self.prelu3(self.conv3(x))
        probabilities = F.softmax(self.conv4_1(x), dim=1)
        boxes = self.conv4_2(x)
        return probabilities, boxes


class RNet(nn.Module):
    """MTCNN refinement network on 24x24 crops.

    ``forward`` maps ``(N, 3, 24, 24)`` crops to ``(probabilities, boxes)`` of
    shapes ``(N, 2)`` (column 1 is "face") and ``(N, 4)``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 28, kernel_size=3)
        self.prelu1 = nn.PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(28, 48, kernel_size=3)
        self.prelu2 = nn.PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(48, 64, kernel_size=2)
        self.prelu3 = nn.PReLU(64)
        # 24 -> conv 22 -> pool 11 -> conv 9 -> pool 4 -> conv 3: 64 * 3 * 3 = 576.
        self.dense4 = nn.Linear(576, 128)
        self.prelu4 = nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.prelu3(self.conv3(x))
        # The stored dense weights index the flattened map in (width, height,
        # channel) order. In plain NCHW order ONet misplaces face landmarks.
        x = x.permute(0, 3, 2, 1).contiguous()
        x = self.prelu4(self.dense4(x.view(x.shape[0], -1)))
        probabilities = F.softmax(self.dense5_1(x), dim=1)
        boxes = self.dense5_2(x)
        return probabilities, boxes


class ONet(nn.Module):
    """MTCNN output network on 48x48 crops.

    ``forward`` maps ``(N, 3, 48, 48)`` crops to ``(probabilities, boxes,
    landmarks)`` of shapes ``(N, 2)`` (column 1 is "face"), ``(N, 4)`` and
    ``(N, 10)``. The landmarks are five x coordinates then five y coordinates,
    as fractions of the crop's width and height.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, kernel_size=3)
        self.prelu1 = nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3)
        self.prelu2 = nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(64, 64, kernel_size=3)
        self.prelu3 = nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4 = nn.Conv2d(64, 128, kernel_size=2)
        self.prelu4 = nn.PReLU(128)
        # 48 -> 46 -> 23 -> 21 -> 10 -> 8 -> 4 -> 3: 128 * 3 * 3 = 1152.
        self.dense5 = nn.Linear(1152, 256)
        self.prelu5 = nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(
        self, x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu4(self.conv4(x))
        # Same (width, height, channel) flattening order as in RNet.
        x = x.permute(0, 3, 2, 1).contiguous()
        x = self.prelu5(self.dense5(x.view(x.shape[0], -1)))
        probabilities = F.softmax(self.dense6_1(x), dim=1)
        boxes = self.dense6_2(x)
        landmarks = self.dense6_3(x)
        return probabilities, boxes, landmarks


def mtcnn_weights_path(name: str) -> pathlib.Path:
    """Locate ``facenet_pytorch/data/{name}.pt`` in the installed wheel.

    Calls :func:`pytest.skip` with the install command when facenet-pytorch
    is not installed, so a test that needs the weights is skipped, not failed.
    """
    if name not in MTCNN_SHA256:
        raise ValueError(f"name must be one of {sorted(MTCNN_SHA256)}, got {name!r}")
    try:
        distribution = importlib.metadata.distribution(FACENET_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        pytest.skip(f"MTCNN weights need {FACENET_INSTALL_COMMAND!r}")
    relative = f"facenet_pytorch/data/{name}.pt"
    path = pathlib.Path(str(distribution.locate_file(relative)))
    if not path.is_file():
        pytest.skip(f"{path} is missing; reinstall with {FACENET_INSTALL_COMMAND!r}")
    return path


def file_sha256(path: pathlib.Path) -> str:
    """Return the hex SHA-256 digest of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _load_mtcnn(build: Callable[[], nn.Module], name: str) -> nn.Module:
    path = mtcnn_weights_path(name)
    # The random initial weights are all overwritten, but drawing them would
    # still advance the global generator.
    model = _seeded(0, build)
    state_dict = torch.load(path, map_location="cpu", weights_only=True)
    # strict=True: every key of the file must match the architecture, and the
    # reverse, so a wrong layer shape or name fails here.
    model.load_state_dict(state_dict, strict=True)
    return model.eval()


def load_pnet() -> PNet:
    """Build :class:`PNet` with the pretrained weights from facenet-pytorch."""
    return _load_mtcnn(PNet, "pnet")


def load_rnet() -> RNet:
    """Build :class:`RNet` with the pretrained weights from facenet-pytorch."""
    return _load_mtcnn(RNet, "rnet")


def load_onet() -> ONet:
    """Build :class:`ONet` with the pretrained weights from facenet-pytorch."""
    return _load_mtcnn(ONet, "onet")


def mtcnn_normalize(image: torch.Tensor) -> torch.Tensor:
    """Scale uint8-range RGB pixels to the input range MTCNN was trained on.

    Maps ``p`` to ``(p - 127.5) / 128``, so [0, 255] becomes about [-1, 1].
    """
    return (image - 127.5) * 0.0078125


#: Supersampling factor of :func:`drawn_face`, for smooth edges.
_FACE_SUPERSAMPLING = 4


def _ellipse(
    x: torch.Tensor,
    y: torch.Tensor,
    left: float,
    top: float,
    right: float,
    bottom: float,
) -> torch.Tensor:
    cx, cy = (left + right) / 2, (top + bottom) / 2
    rx, ry = (right - left) / 2, (bottom - top) / 2
    return ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1


def drawn_face(size: int = 48) -> torch.Tensor:
    """Draw a frontal cartoon face that fills a square RGB crop.

    Eyes are centred at x = 0.32 and 0.68, y = 0.40 of the crop, the nose tip
    at (0.50, 0.62) and the mouth corners at (0.35, 0.75) and (0.65, 0.75), in
    the landmark order of :class:`ONet` (left eye, right eye, nose, left and
    right mouth corner). Returns float32 pixels in [0, 255] of shape
    ``(1, 3, size, size)``; pass them through :func:`mtcnn_normalize`.
    """
    fine = size * _FACE_SUPERSAMPLING
    coords = (torch.arange(fine, dtype=torch.float64) + 0.5) / fine
    y, x = torch.meshgrid(coords, coords, indexing="ij")
    image = torch.empty(3, fine, fine, dtype=torch.float64)
    image[:] = torch.tensor([70.0, 60.0, 50.0]).view(3, 1, 1)

    def paint(mask: torch.Tensor, rgb: tuple[float, float, float]) -> None:
        image[:, mask] = torch.tensor(rgb, dtype=torch.float64).view(3, 1)

    paint(_ellipse(x, y, 0.12, 0.02, 0.88, 1.05), (225, 180, 150))  # skin
    paint(_ellipse(x, y, 0.05, -0.15, 0.95, 0.25), (50, 35, 25))  # hair
    for centre in (0.32, 0.68):
        brow = (abs(x - centre) <= 0.11) & (y >= 0.29) & (y <= 0.31)
        paint(brow, (60, 40, 30))
        paint(_ellipse(x, y, centre - 0.09, 0.36, centre + 0.09, 0.44), (255,) * 3)
        paint(_ellipse(x, y, centre - 0.04, 0.36, centre + 0.04, 0.44), (40, 30, 20))
    # The nose is the triangle (0.50, 0.45), (0.44, 0.62), (0.56, 0.62).
    nose = (y <= 0.62) & (abs(x - 0.5) <= (y - 0.45) * (0.06 / 0.17))
    paint(nose, (200, 150, 125))
    # The mouth is the lower half of an ellipse.
    mouth = _ellipse(x, y, 0.35, 0.68, 0.65, 0.82) & (y >= 0.75)
    paint(mouth, (170, 70, 70))
    coarse = F.avg_pool2d(image.unsqueeze(0), _FACE_SUPERSAMPLING)
    return coarse.to(torch.float32)


# --------------------------------------------------------------------------
# Random models


def _make_activation(activation: Callable[[], nn.Module] | nn.Module) -> nn.Module:
    if isinstance(activation, nn.Module):
        return copy.deepcopy(activation)
    return activation()


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 convolutions with BatchNorm and a shortcut.

    ``forward(x) = relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``, where
    the shortcut is the identity, or a strided 1x1 convolution with BatchNorm
    when the stride or the width changes.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(
            in_channels, out_channels, 3, stride=stride, padding=1, bias=False
        )
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(out + shortcut)


class ResNet18Like(nn.Module):
    """ResNet-18 layout for 32x32 images: a 3x3 stem, four stages of two blocks.

    Stage ``i`` has width ``widths[i]``, and stages 2 to 4 halve the resolution.
    ``forward`` maps ``(N, 3, H, W)`` to logits ``(N, num_classes)``.
    """

    def __init__(self, num_classes: int, widths: Sequence[int]) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, widths[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        stages = []
        in_channels = widths[0]
        for index, width in enumerate(widths):
            stride = 1 if index == 0 else 2
            stages.append(
                nn.Sequential(
                    BasicBlock(in_channels, width, stride),
                    BasicBlock(width, width, 1),
                )
            )
            in_channels = width
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.pool(x), 1))


#: Stage widths of :func:`resnet18_like`. torchvision's ResNet-18 uses 64 to 512.
RESNET_WIDTHS = (16, 32, 64, 128)


def resnet18_like(
    num_classes: int = 10, widths: Sequence[int] = RESNET_WIDTHS, seed: int = 0
) -> ResNet18Like:
    """Build a randomly initialised :class:`ResNet18Like` in eval mode.

    Its BatchNorm layers still have the initial statistics (mean 0, variance
    1). Call :func:`warm_batchnorm` for realistic ones.
    """
    if len(widths) != 4:
        raise ValueError(f"widths must have 4 entries, got {widths!r}")
    return _seeded(seed, lambda: ResNet18Like(num_classes, widths))


_BATCHNORM_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)

#: SGD settings of :func:`warm_batchnorm`.
WARM_BATCHNORM_LR = 0.05
WARM_BATCHNORM_BATCH = 16

#: Mean and standard deviation of the random training images. The offset
#: makes running means clearly nonzero.
WARM_BATCHNORM_INPUT_MEAN = 0.5
WARM_BATCHNORM_INPUT_STD = 2.0


def warm_batchnorm(
    model: nn.Module,
    steps: int = 5,
    seed: int = 0,
    input_shape: Sequence[int] = RESNET_INPUT_SHAPE[1:],
) -> nn.Module:
    """Train ``model`` in place for a few SGD steps so BatchNorm has real statistics.

    Each step draws a batch of random images (mean
    :data:`WARM_BATCHNORM_INPUT_MEAN`, standard deviation
    :data:`WARM_BATCHNORM_INPUT_STD`) and random labels, and takes one SGD step
    on the cross-entropy loss. The running statistics of every BatchNorm layer
    are reset first and then accumulate as the plain average over the steps
    (``momentum=None``), so they are the statistics of the data, not a blend
    with the initial mean 0 and variance 1. Each layer's momentum is restored
    afterwards. Returns the same model, in eval mode.
    """
    norms = [m for m in model.modules() if isinstance(m, _BATCHNORM_TYPES)]
    momenta = [norm.momentum for norm in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=WARM_BATCHNORM_LR)
    model.train()
    for _ in range(steps):
        images = torch.randn((WARM_BATCHNORM_BATCH, *input_shape), generator=generator)
        images = images * WARM_BATCHNORM_INPUT_STD + WARM_BATCHNORM_INPUT_MEAN
        logits = model(images)
        labels = torch.randint(
            0, logits.shape[-1], (WARM_BATCHNORM_BATCH,), generator=generator
        )
        loss = F.cross_entropy(logits, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    for norm, momentum in zip(norms, momenta, strict=True):
        norm.momentum = momentum
    return model.eval()


def tiny_gpt2(seed: int = 0) -> nn.Module:
    """Build a two-layer ``transformers.GPT2LMHeadModel`` with tied embeddings.

    Four heads of width 8 (``n_embd=32``), a vocabulary of
    :data:`GPT2_VOCAB_SIZE` tokens and :data:`GPT2_MAX_POSITIONS` positions,
    randomly initialised. ``lm_head.weight`` is the same tensor as
    ``transformer.wte.weight``. ``forward(input_ids)`` returns an output whose
    ``logits`` have shape ``(N, T, GPT2_VOCAB_SIZE)``; the key-value cache is
    off (``use_cache=False``), so the output contains no cache object.
    """
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        vocab_size=GPT2_VOCAB_SIZE,
        n_positions=GPT2_MAX_POSITIONS,
        n_embd=32,
        n_layer=2,
        n_head=4,
        # Without a key-value cache the output contains only tensors (logits).
        use_cache=False,
        # GPT-2's own ids (50256) lie outside this small vocabulary.
        bos_token_id=GPT2_VOCAB_SIZE - 1,
        eos_token_id=GPT2_VOCAB_SIZE - 1,
        tie_word_embeddings=True,
    )
    return _seeded(seed, lambda: GPT2LMHeadModel(config))


class ViTBlock(nn.Module):
    """Pre-LayerNorm transformer block: ``x + attn(ln1(x))``, then ``+ mlp(ln2(x))``."""

    def __init__(self, dim: int, num_heads: int, mlp_dim: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, num_heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, mlp_dim), nn.GELU(), nn.Linear(mlp_dim, dim)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class TinyViT(nn.Module):
    """Vision transformer encoder with a class token and a linear head.

    ``forward`` maps ``(N, 3, image_size, image_size)`` images to logits
    ``(N, num_classes)`` read from the class token after the final LayerNorm.
    """

    def __init__(
        self,
        image_size: int = 16,
        patch_size: int = 4,
        dim: int = 32,
        depth: int = 2,
        num_heads: int = 4,
        mlp_dim: int = 64,
        num_classes: int = 10,
    ) -> None:
        super().__init__()
        num_patches = (image_size // patch_size) ** 2
        self.patch_embed = nn.Conv2d(3, dim, patch_size, stride=patch_size)
        # Both start random, not zero, so that a transform that skips them
        # changes the output.
        self.cls_token = nn.Parameter(0.02 * torch.randn(1, 1, dim))
        self.pos_embed = nn.Parameter(0.02 * torch.randn(1, num_patches + 1, dim))
        self.blocks = nn.Sequential(
            *(ViTBlock(dim, num_heads, mlp_dim) for _ in range(depth))
        )
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.patch_embed(x).flatten(2).transpose(1, 2)
        cls = self.cls_token.expand(tokens.shape[0], -1, -1)
        tokens = torch.cat([cls, tokens], dim=1) + self.pos_embed
        tokens = self.norm(self.blocks(tokens))
        return self.head(tokens[:, 0])


def tiny_vit(seed: int = 0) -> TinyViT:
    """Build a randomly initialised two-layer :class:`TinyViT` for 16x16 images."""
    return _seeded(seed, TinyViT)


class FunctionalNet(nn.Module):
    """A residual MLP written with functional ops and bare parameters.

    ``forward(x) = w3 (t + w_skip h) + b3`` with ``h = relu(w1 x + b1)`` and
    ``t = tanh(w2 h + b2)``. It has no submodules, so every layer is visible
    only as ``F.linear``, ``F.relu``, ``torch.tanh`` and ``+`` in the graph.
    """

    def __init__(
        self, in_features: int = 6, hidden: int = 16, out_features: int = 3
    ) -> None:
        super().__init__()

        def weight(rows: int, cols: int) -> nn.Parameter:
            return nn.Parameter(torch.randn(rows, cols) / cols**0.5)

        self.w1 = weight(hidden, in_features)
        self.b1 = nn.Parameter(0.1 * torch.randn(hidden))
        self.w2 = weight(hidden, hidden)
        self.b2 = nn.Parameter(0.1 * torch.randn(hidden))
        self.w_skip = weight(hidden, hidden)
        self.w3 = weight(out_features, hidden)
        self.b3 = nn.Parameter(0.1 * torch.randn(out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(F.linear(x, self.w1, self.b1))
        t = torch.tanh(F.linear(h, self.w2, self.b2))
        return F.linear(t + F.linear(h, self.w_skip), self.w3, self.b3)


def functional_net(seed: int = 0) -> FunctionalNet:
    """Build a randomly initialised :class:`FunctionalNet` for 6 input features."""
    return _seeded(seed, FunctionalNet)


class MixedNet(nn.Module):
    """A model with an int64 buffer and both float64 and float32 parameters.

    ``forward`` maps ``(N, seq_len, dim)`` float inputs to ``(N, seq_len, dim)``:
    ``fc2(relu(fc1(x + position(position_ids))))``. ``position_ids`` is the
    int64 buffer ``arange(seq_len)``; ``position`` and ``fc2`` are float32 and
    ``fc1`` is float64, and activations are cast to each layer's dtype.
    """

    def __init__(self, seq_len: int = 5, dim: int = 8, hidden: int = 12) -> None:
        super().__init__()
        self.register_buffer("position_ids", torch.arange(seq_len))
        self.position = nn.Embedding(seq_len, dim)
        self.fc1 = nn.Linear(dim, hidden).to(torch.float64)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x + self.position(self.position_ids)
        h = F.relu(self.fc1(h.to(self.fc1.weight.dtype)))
        return self.fc2(h.to(self.fc2.weight.dtype))


def mixed_net(seed: int = 0) -> MixedNet:
    """Build a randomly initialised :class:`MixedNet` (sequence 5, width 8)."""
    return _seeded(seed, MixedNet)


def mlp(
    widths: Sequence[int],
    activation: Callable[[], nn.Module] | nn.Module = nn.ReLU,
    seed: int = 0,
) -> nn.Sequential:
    """Build ``Linear, activation, ..., Linear`` through the given widths.

    ``widths = (d0, d1, ..., dk)`` gives ``k`` Linear layers, with the
    activation after every layer except the last. ``activation`` is a module
    class or factory called once per layer, or a module that is copied.
    """
    if len(widths) < 2:
        raise ValueError(f"widths must have at least 2 entries, got {widths!r}")

    def build() -> nn.Sequential:
        layers: list[nn.Module] = []
        for index in range(len(widths) - 1):
            layers.append(nn.Linear(widths[index], widths[index + 1]))
            if index < len(widths) - 2:
                layers.append(_make_activation(activation))
        return nn.Sequential(*layers)

    return _seeded(seed, build)


def small_cnn(
    activation: Callable[[], nn.Module] | nn.Module = nn.ReLU, seed: int = 0
) -> nn.Sequential:
    """Build a two-convolution CNN for 8x8 RGB images with 10 outputs.

    ``Conv2d(3, 8, 3, padding=1), act, Conv2d(8, 16, 3, stride=2, padding=1),
    act, Flatten, Linear(16 * 4 * 4, 10)``: the Flatten turns each channel of
    the 4x4 map into a block of 16 dense features.
    """

    def build() -> nn.Sequential:
        return nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            _make_activation(activation),
            nn.Conv2d(8, 16, 3, stride=2, padding=1),
            _make_activation(activation),
            nn.Flatten(),
            nn.Linear(16 * 4 * 4, 10),
        )

    return _seeded(seed, build)

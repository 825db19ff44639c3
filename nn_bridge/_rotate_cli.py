"""The ``nn-bridge rotate MODEL -o OUT`` command.

It loads a transformers causal LM directory offline, folds its norms and
rotates its residual stream (:func:`nn_bridge.rotate_residual_stream`). Then
it compares the logits of the two models in float64 on random token ids and
writes the rotated model with ``save_pretrained`` into a new directory. The
directory is written under a temporary name next to OUT and renamed, so OUT
is either absent or complete.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import tempfile
from typing import Any

from .cli import UsageError, _seed

logger = logging.getLogger(__name__)

#: Shape of the random token ids of the logits check (cut to the context size).
CHECK_IDS_SHAPE = (2, 16)

#: Relative tolerance of the logits check. LLaMA's RMSNorm computes in float32
#: even inside a float64 model, which leaves relative deviations of the order
#: of 1e-7.
CHECK_RTOL = 1e-5


def add_rotate_command(commands: Any) -> None:
    """Add the ``rotate`` subcommand to the ``nn-bridge`` subparsers."""
    rotate = commands.add_parser(
        "rotate",
        help="fold the norms and rotate the residual stream of a causal LM",
        description="Fold the norm gains (and LayerNorm biases) of a LLaMA-style "
        "or GPT-2 causal LM into the layers that read them, rotate its residual "
        "stream by a random orthogonal matrix, check the logits in float64 and "
        "write the rotated model directory.",
    )
    rotate.add_argument(
        "model", metavar="MODEL", help="a transformers causal LM directory"
    )
    rotate.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="OUT",
        help="new model directory to write (it must not exist, or be empty)",
    )
    rotate.add_argument(
        "--seed",
        type=_seed,
        default=0,
        help="seed of the rotation, a nonnegative integer (default 0)",
    )
    rotate.add_argument(
        "--factored",
        action="store_true",
        help="draw the rotation as a Kronecker product of two small Haar-random "
        "orthogonal matrices, which is faster on wide models",
    )
    rotate.add_argument(
        "--json", action="store_true", help="print the summary as one JSON object"
    )
    rotate.set_defaults(run=run_rotate)


def _check_output(path: str) -> None:
    if os.path.isfile(path) or (os.path.isdir(path) and os.listdir(path)):
        raise UsageError(
            f"invalid -o {path!r}: it already exists; give a new or empty directory"
        )
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise UsageError(f"invalid -o {path!r}: directory {parent!r} does not exist")


def _load_causal_lm(path: str) -> Any:
    if not os.path.isdir(path):
        raise UsageError(f"MODEL {path!r} is not a directory")
    if not os.path.isfile(os.path.join(path, "config.json")):
        raise UsageError(
            f"directory {path!r} has no config.json; expected a transformers model "
            "directory"
        )
    from ._rotate import GPT2_MODEL_TYPES, LLAMA_MODEL_TYPES

    supported = LLAMA_MODEL_TYPES + GPT2_MODEL_TYPES
    try:
        with open(os.path.join(path, "config.json"), encoding="utf-8") as stream:
            model_type = json.load(stream).get("model_type")
    except (OSError, ValueError, AttributeError) as error:
        raise UsageError(f"cannot read {path!r}/config.json: {error}") from None
    # Checked before loading, which for a large model takes long and logs a
    # load report.
    if model_type is None:
        raise UsageError(
            f"cannot load a causal LM from {path!r}: its config.json names no "
            "model_type"
        )
    if model_type not in supported:
        raise UsageError(
            f"cannot rotate MODEL {path!r} (model_type {model_type!r}): supported "
            f"model types are {', '.join(supported)}"
        )
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as transformers_logging

    # The command prints one summary line; loading and saving bars would
    # interleave with it.
    transformers_logging.disable_progress_bar()

    try:
        model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError, KeyError) as error:
        first = " ".join(str(error).split())
        raise UsageError(f"cannot load a causal LM from {path!r}: {first}") from None
    return model.eval()


def _random_ids(model: Any) -> dict[str, Any]:
    import torch

    config = model.config
    length = CHECK_IDS_SHAPE[1]
    context = getattr(config, "n_positions", None) or getattr(
        config, "max_position_embeddings", None
    )
    if context:
        length = min(length, int(context))
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(
        0, int(config.vocab_size), (CHECK_IDS_SHAPE[0], length), generator=generator
    )
    return {"input_ids": ids, "use_cache": False}


def _save_directory(model: Any, source: str, output: str) -> None:
    """Write ``model`` (and the source tokenizer, if any) to a new directory."""
    parent = os.path.dirname(os.path.abspath(output))
    temporary = tempfile.mkdtemp(dir=parent, prefix=".tmp-rotate-")
    try:
        # mkdtemp creates the directory owner-only; give it a plain mkdir's mode.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o777 & ~umask)
        model.save_pretrained(temporary, safe_serialization=True)
        try:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
        except (OSError, ValueError, TypeError, KeyError) as error:
            logger.info("no tokenizer copied from %s: %s", source, error)
        else:
            tokenizer.save_pretrained(temporary)
        # rename(2) replaces an empty directory and never a full one.
        os.replace(temporary, output)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise


def run_rotate(args: argparse.Namespace) -> int:
    """Rotate MODEL into OUT; return 0, or 1 when the logits changed."""
    from ._check import check_function_preserved
    from ._errors import InvalidArgumentError
    from ._rotate import rotate_residual_stream

    _check_output(args.output)
    model = _load_causal_lm(args.model)
    try:
        result = rotate_residual_stream(model, seed=args.seed, factored=args.factored)
    except InvalidArgumentError as error:
        raise UsageError(str(error)) from None
    report = check_function_preserved(
        model, result.model, _random_ids(model), rtol=CHECK_RTOL
    )
    if report.ok:
        _save_directory(result.model, args.model, args.output)
    summary = {
        "command": "rotate",
        "model": args.model,
        "output": args.output if report.ok else None,
        **result.summary(),
        "max_abs_logit_deviation": report.max_abs,
        "max_rel_logit_deviation": report.max_rel,
        "function_preserved": report.ok,
    }
    if args.json:
        print(json.dumps(summary))
    else:
        head = "; head untied from the embedding" if result.untied_head else ""
        written = f"wrote {args.output}" if report.ok else "NOT written"
        print(
            f"{written}: {summary['architecture']} residual stream rotated (hidden "
            f"{summary['hidden_size']}, {summary['norm']}, {summary['folded_norms']} "
            f"norms folded, seed {args.seed}{head}); logits {report.summary()}"
        )
    return 0 if report.ok else 1

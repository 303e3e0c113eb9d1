"""The turn tokens' rows of a tied head, trained without a vocabulary-wide weight gradient.

With `stop_token_training: turn_tokens`, PEFT trains two rows of Gemma's embedding, which is also its output head.
TRL's fused loss is handed the head's weight with those rows written in (a full copy each step), and since that weight
needs a gradient it computes the whole head's, in float32, to pass two rows of it on: on the H200 the 4B's peak holds
3.85 GiB of the loss's buffers and 1.25 GiB of the copy for them (docs/benchmarks.md, twenty-second session).

`train_rows_as_columns` moves the two rows out of the head and into the hidden state instead. The final norm's output
gets each token's score against the two trained rows as two more columns (and zeros up to a multiple of 8, for
aligned matmuls); the head becomes a frozen matrix of the embedding with those rows zeroed and a one-hot column for
each, so every logit is what it was. The head then needs no gradient, so the loss computes none for it, and the rows
learn through their scores. The same parameter (PEFT's) keeps training through the input embedding, as tied rows do.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

ALIGN = 8  # the widened hidden size is a multiple of this (the tensor cores' preferred inner dimension)


class _ScoredNorm(nn.Module):
    """The final norm, its output widened by each token's scores against the trained rows, then zeros."""

    def __init__(self, norm: nn.Module, rows: nn.Parameter, pad: int):
        super().__init__()
        self.norm = norm
        self._rows = [rows]  # PEFT's parameter, held but not registered here a second time
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm(x)
        scores = y @ self._rows[0].to(y.dtype).t()
        return torch.cat([y, scores, y.new_zeros(*y.shape[:-1], self.pad)], dim=-1)


class _FrozenHead(nn.Module):
    """The output head over the widened hidden state; `weight` and `bias` are what TRL's fused loss reads."""

    def __init__(self, weight: torch.Tensor):
        super().__init__()
        self.register_buffer("weight", weight, persistent=False)
        self.bias = None

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return F.linear(hidden, self.weight)


def train_rows_as_columns(model) -> None:
    """Rewire a PEFT model whose tied embedding trains some rows (trainable_token_indices) as the module docstring
    says. The base weight is copied once, widened: a persistent copy of the head, vocabulary x (hidden + 8). The
    rewired model saves its adapter as PEFT's (the norm and head hold no adapter weights) and gives the same logits."""
    from gemsql.errors import GemsqlError

    base = model.get_base_model()
    if getattr(base.model, "norm", None) is None:  # the image-text checkpoints (4B and up) nest their text model
        raise GemsqlError("turn_rows_as_columns applies to the text-only models (Gemma 3 270M and 1B, or a text "
                          "checkpoint of the larger ones)", field="turn_rows_as_columns")
    embedding = base.get_input_embeddings()
    adapter = embedding.token_adapter
    name = adapter.active_adapters[0]
    rows = adapter.trainable_tokens_delta[name]
    index = torch.tensor(adapter.token_indices[name], device=rows.device)
    weight = embedding.original_module.weight.detach()
    vocab, hidden = weight.shape
    width = -(-(hidden + len(index)) // ALIGN) * ALIGN
    widened = weight.new_zeros(vocab, width)
    widened[:, :hidden] = weight
    widened[index, :hidden] = 0
    widened[index, hidden + torch.arange(len(index), device=index.device)] = 1
    base.model.norm = _ScoredNorm(base.model.norm, rows, width - hidden - len(index))
    base.set_output_embeddings(_FrozenHead(widened))

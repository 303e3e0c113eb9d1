"""`gemsql merge`: fold the LoRA adapter into the full-precision base and save a plain checkpoint.

The base is always loaded unquantized: merging into 4-bit weights would round the adapter away. A fully
fine-tuned model (`finetuning: full`) has nothing to fold and is saved the same way. The result loads with
`AutoModelForCausalLM.from_pretrained` alone, and its generation config stops at <end_of_turn> as well as <eos>.
"""

from __future__ import annotations

import logging
from pathlib import Path

from gemsql.config import Config
from gemsql.errors import GemsqlError
from gemsql.files import atomic_dir

log = logging.getLogger(__name__)


def merged_dir(cfg: Config) -> Path:
    return cfg.run_dir / "merged"


def merge(cfg: Config, adapter: str | Path | None = None, output: str | Path | None = None) -> Path:
    """The adapter folded into the base (or the fully fine-tuned model as it is), saved to `output` (run_dir/merged)."""
    from peft import PeftModel
    from transformers import GenerationConfig

    from gemsql.model import load_model, load_tokenizer, stop_token_ids
    from gemsql.train import CONFIG_NAME, trained_dir

    trained = Path(adapter or trained_dir(cfg))
    tokenizer = load_tokenizer(cfg.model)
    if (trained / "adapter_config.json").is_file():
        base = load_model(cfg.model, quantize=False)
        model = PeftModel.from_pretrained(base, str(trained)).merge_and_unload()
    elif (trained / "config.json").is_file():  # a whole model from `finetuning: full`
        model = load_model(cfg.model, quantize=False, path=str(trained))
    else:
        raise GemsqlError("no trained weights here (neither adapter_config.json nor a model's config.json); run "
                          "`gemsql train` first", file=str(trained))
    stops = stop_token_ids(tokenizer)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=stops,
        pad_token_id=tokenizer.pad_token_id,
        do_sample=False,
        max_new_tokens=cfg.generate.max_new_tokens,
    )
    out = Path(output or merged_dir(cfg))
    with atomic_dir(out) as tmp:
        model.save_pretrained(tmp, max_shard_size="2GB")
        tokenizer.save_pretrained(tmp)
        if (trained / CONFIG_NAME).is_file():
            (tmp / CONFIG_NAME).write_text((trained / CONFIG_NAME).read_text())
    log.info("merged model saved to %s", out)
    return out

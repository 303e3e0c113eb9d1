"""`gemsql generate`: batched greedy SQL generation from (question, schema) pairs.

Prompts are sorted by length so each batch pads little, left-padded so every row's answer starts at
the same position, and decoding stops per row at <eos>, <end_of_turn> or the end of one complete SQL
statement. A batch decodes in rounds of growing length; after each round the rows that ended leave and
the rest go on from the same KV cache, so a few long answers no longer keep a whole batch decoding.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import time
import weakref
from collections import Counter
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from transformers import StoppingCriteriaList

from gemsql.data.prompt import user_message

log = logging.getLogger(__name__)


@dataclass
class Generation:
    sql: str
    raw: str
    new_tokens: int
    stop_reason: str  # "<end_of_turn>" or "<eos>" (the model ended its turn), "statement" (one complete SQL
    # statement, then cut), or "length" (max_new_tokens reached)
    candidate: int = 0  # 0: the greedy answer; k: the k-th beam of execution-guided decoding (see runnable)
    greedy_sql: str | None = None  # the greedy answer a beam or a repair replaced (None when neither did)
    repaired: bool = False  # the SQL is a schema repair (gemsql.repair) of the answer before it (see `repaired`)

    @property
    def stopped(self) -> bool:
        return self.stop_reason != "length"


def load_for_generation(model_path: str, adapter: str | None = None, dtype: torch.dtype | None = None):
    """A model folder (merged or base), optionally with a LoRA adapter on top, and its tokenizer."""
    from gemsql.config import ModelConfig
    from gemsql.model import compute_dtype, load_tokenizer, model_class, resolve_model

    model_path = resolve_model(model_path)
    cfg = ModelConfig(model_name_or_path=model_path)
    tokenizer = load_tokenizer(cfg, path=adapter or model_path)
    dtype = dtype or compute_dtype(cfg)
    device_map = {"": torch.cuda.current_device()} if torch.cuda.is_available() else None
    model = model_class(model_path).from_pretrained(model_path, dtype=dtype, device_map=device_map)
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter)
    model.eval()
    return model, tokenizer


_FENCE = re.compile(r"```(?:sql|sqlite)?\s*(.*?)(?:```|$)", re.S | re.I)


# The words an SQL statement can start with (SQLite's grammar), to find where the SQL of an answer begins.
_STATEMENT_START = re.compile(
    r"\b(?:SELECT|WITH|VALUES|INSERT|REPLACE|UPDATE|DELETE|CREATE|DROP|ALTER|PRAGMA|EXPLAIN|ANALYZE|REINDEX|VACUUM|"
    r"ATTACH|DETACH|BEGIN|COMMIT|END|ROLLBACK|SAVEPOINT|RELEASE)\b", re.I)


def extract_sql(text: str) -> str:
    """The SQL in a model answer: inside a code fence if there is one, from the first word a statement can start
    with. A fine-tuned 270M answered 81 of 1,509 held-out Spider questions with a stray token first ("거짓" and
    the like, then the SQL on the next line: docs/results.md), and a label such as 'SQL:' is the same case."""
    m = _FENCE.search(text)
    if m:
        text = m.group(1)
    text = text.strip()
    starts = [s.start() for s in _STATEMENT_START.finditer(text)]
    if not starts or starts[0] == 0 or _parses(text):  # "(SELECT ...) UNION ..." is whole as it is
        return text
    # Prose can hold those words too ("the query with a join: SELECT ..."): the first start whose rest parses wins,
    # else the first start (an answer whose SQL does not parse fails either way).
    return next((text[i:] for i in starts if _parses(text[i:])), text[starts[0]:])


def _parses(sql: str) -> bool:
    from gemsql.evaluate.score import parse_statements  # never raises, even on an answer nested too deeply

    return isinstance(parse_statements(sql), tuple)


class StatementEnd:
    """Stopping criterion: a row is done once its answer is one complete SQL statement.

    A batch decodes until its slowest row stops, so one answer that never emits <end_of_turn> used to keep
    every row of its batch decoding to max_new_tokens. Only rows whose last token holds a ';' are decoded
    and checked (sqlite3.complete_statement respects quotes and comments).
    """

    def __init__(self, tokenizer, prompt_width: int, semicolon_ids: torch.Tensor | None = None):
        self.tokenizer, self.start = tokenizer, prompt_width
        self.ids = semicolon_token_ids(tokenizer) if semicolon_ids is None else semicolon_ids

    def __call__(self, input_ids: torch.Tensor, scores, **kwargs) -> torch.Tensor:
        done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        if input_ids.shape[1] <= self.start:
            return done
        hits = torch.isin(input_ids[:, -1], self.ids.to(input_ids.device)).nonzero().flatten().tolist()
        for row in hits:
            text = self.tokenizer.decode(input_ids[row, self.start :], skip_special_tokens=True)
            done[row] = sqlite3.complete_statement(text)
        return done


_SEMICOLONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def semicolon_token_ids(tokenizer) -> torch.Tensor:
    """Every vocabulary entry that contains a ';': one scan of the vocabulary per tokenizer (about 0.25 s for
    Gemma's 262k entries), not one per generate call, which `gemsql serve` makes for every batch of requests."""
    if tokenizer not in _SEMICOLONS:
        _SEMICOLONS[tokenizer] = torch.tensor([i for t, i in tokenizer.get_vocab().items() if ";" in t])
    return _SEMICOLONS[tokenizer]


def pad_id(tokenizer, stops: list[int]) -> int:
    """The id that pads a batch: the tokenizer's pad token, else the first stop token."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stops[0]


def prompt_ids(tokenizer, pair: tuple[str, str]) -> list[int]:
    """The token ids of a (question, context) pair's chat prompt, ready for the answer."""
    prompt = tokenizer.apply_chat_template([user_message(*pair)], tokenize=False, add_generation_prompt=True)
    return tokenizer(prompt, add_special_tokens=False).input_ids


@torch.inference_mode()
def generate_sql(
    model, tokenizer, pairs: list[tuple[str, str]], *, max_new_tokens: int = 256, batch_size: int = 16,
    stop_at_statement_end: bool = True, progress: bool = True, first_round_tokens: int = 32,
    cudnn_attention: bool | None = None,
) -> list[Generation]:
    """Greedy SQL for each (question, context) pair, in input order.

    A batch decodes in rounds of growing length (`first_round_tokens`, then twice as many, ...; 0: one round of
    max_new_tokens): after each round the rows that ended leave and only the unfinished ones go on from their
    partial answers. Most answers end early, and a few rambling ones no longer keep a whole batch decoding.
    A batch that runs out of GPU memory is split in two and retried, so `batch_size` is an upper bound that a
    smaller GPU (or longer prompts) lowers by itself. `cudnn_attention`: see ModelConfig.cudnn_attention."""
    from gemsql.model import attention_kernels, cudnn_allowed, stop_token_ids

    encoded = [prompt_ids(tokenizer, pair) for pair in pairs]
    order = sorted(range(len(pairs)), key=lambda i: -len(encoded[i]))
    stops = stop_token_ids(tokenizer)
    decode = _BatchDecoder(model, tokenizer, stops, semicolon_token_ids(tokenizer) if stop_at_statement_end else None)
    rounds = _round_lengths(max_new_tokens, first_round_tokens)
    results: list[Generation | None] = [None] * len(pairs)
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    started, done = time.perf_counter(), 0
    for batch in batches:
        with attention_kernels(cudnn_allowed(cudnn_attention, decoding=True)):
            generations = decode.fitting([encoded[i] for i in batch], rounds)
        for i, gen in zip(batch, generations):
            results[i] = gen
        done += len(batch)
        if progress:
            log.info("generated %d/%d (%.1f examples/s)", done, len(pairs), done / (time.perf_counter() - started))
    return results  # type: ignore[return-value]


def _round_lengths(max_new_tokens: int, first: int) -> list[int]:
    """Answer lengths at which unfinished rows are regrouped: first, 2 x first, ... up to max_new_tokens."""
    lengths = []
    length = first if first > 0 else max_new_tokens
    while length < max_new_tokens:
        lengths.append(length)
        length *= 2
    return lengths + [max_new_tokens]


class _BatchDecoder:
    """Greedy decoding of a batch of prompts in rounds; between rounds the rows that ended leave the batch and the
    others go on from the same KV cache (nothing is computed twice).

    Inputs are left-padded, so every row's next token lands at one position."""

    def __init__(self, model, tokenizer, stops: list[int], semicolons: torch.Tensor | None):
        self.model, self.tokenizer, self.stops, self.semicolons = model, tokenizer, stops, semicolons
        self.pad = pad_id(tokenizer, stops)
        self.device = next(model.parameters()).device

    def fitting(self, prompts: list[list[int]], rounds: list[int]) -> list[Generation]:
        """`in_rounds`, halving the batch as often as GPU memory requires."""
        try:
            return self.in_rounds(prompts, rounds)
        except torch.OutOfMemoryError:
            if len(prompts) == 1:
                raise
            torch.cuda.empty_cache()
            half = len(prompts) // 2
            log.warning("out of GPU memory generating %d prompts at once; trying %d", len(prompts), half)
            return self.fitting(prompts[:half], rounds) + self.fitting(prompts[half:], rounds)

    def in_rounds(self, prompts: list[list[int]], rounds: list[int]) -> list[Generation]:
        """Generations for a batch of prompts, decoded to each round's answer length in turn."""
        width = max(map(len, prompts))
        ids = torch.full((len(prompts), width), self.pad, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, prompt in enumerate(prompts):
            ids[row, width - len(prompt) :] = torch.tensor(prompt)
            mask[row, width - len(prompt) :] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        criteria = StoppingCriteriaList([StatementEnd(self.tokenizer, width, self.semicolons)]
                                        if self.semicolons is not None else [])
        results: list[Generation | None] = [None] * len(prompts)
        pending, cache, so_far = list(range(len(prompts))), None, 0  # pending[k] is row k of ids
        for length in rounds:
            if len(pending) == 1:  # nobody left to wait for: one row decodes to the end in one go
                length = rounds[-1]
            out = self.model.generate(
                input_ids=ids, attention_mask=mask, cache=cache, max_new_tokens=length - so_far,
                do_sample=False, eos_token_id=self.stops, pad_token_id=self.pad, stopping_criteria=criteria,
                # a dynamic cache, whatever the model's generation config asks: rounds shrink and extend it
                cache_implementation=None, return_dict_in_generate=True,
            )
            keep, answers = [], out.sequences[:, width:].tolist()  # one copy from the GPU, not one a row
            for k, i in enumerate(pending):
                answer, ended = self._answer(answers[k], length)
                if ended or length == rounds[-1]:
                    results[i] = self.generation(answer, "" if ended else "length")
                else:
                    keep.append(k)
            if not keep:
                break
            # the unfinished rows go on: their tokens so far, all attended, and their part of the cache
            index = torch.tensor(keep, device=self.device)
            ids = out.sequences[index]
            mask = torch.cat([mask[index], torch.ones_like(ids[:, mask.shape[1] :])], dim=1)
            cache = out.cache
            cache.batch_select_indices(index)
            pending, so_far = [pending[k] for k in keep], length
        return results  # type: ignore[return-value]

    def _answer(self, new: list[int], length: int) -> tuple[list[int], bool]:
        """A row's answer tokens so far (up to and with a stop token) and whether the answer ended."""
        stop = min((new.index(t) for t in self.stops if t in new), default=None)
        if stop is not None:
            return new[: stop + 1], True
        while new and new[-1] == self.pad:  # rows that finished early are padded to the batch's length
            new.pop()
        return new, len(new) < length or self._complete(new)  # cut at the statement's end

    def _complete(self, answer: list[int]) -> bool:
        return self.semicolons is not None and sqlite3.complete_statement(
            self.tokenizer.decode(answer, skip_special_tokens=True))

    def generation(self, answer: list[int], reason: str) -> Generation:
        """The Generation for a finished answer; `reason` only for one cut at max_new_tokens ("length")."""
        if answer and answer[-1] in self.stops:
            reason, answer = self.tokenizer.convert_ids_to_tokens(answer[-1]), answer[:-1]
        raw = self.tokenizer.decode(answer, skip_special_tokens=True)
        if not reason:
            reason = "statement" if self._complete(answer) else "length"
        elif reason == "length" and self._complete(answer):
            reason = "statement"
        return Generation(extract_sql(raw), raw, len(answer), reason)


@torch.inference_mode()
def beam_sql(
    model, tokenizer, pairs: list[tuple[str, str]], rows: list[int], *, beams: int, max_new_tokens: int = 256,
    batch_size: int = 16, cudnn_attention: bool | None = None,
) -> Iterator[tuple[int, list[str]]]:
    """(i, the SQL of pair i's `beams` beam-search answers, most likely first) for each i in `rows`, longest prompts
    first, `batch_size` sequences at a time (a batch that runs out of GPU memory is halved)."""
    from gemsql.model import attention_kernels, cudnn_allowed, stop_token_ids

    stops = stop_token_ids(tokenizer)
    pad = pad_id(tokenizer, stops)
    device = next(model.parameters()).device
    encoded = {i: prompt_ids(tokenizer, pairs[i]) for i in rows}
    rows = sorted(rows, key=lambda i: -len(encoded[i]))
    rows_at_once = max(1, batch_size // beams)  # each row decodes `beams` sequences

    def candidates(rows: list[int]) -> list[list[list[int]]]:
        """The beams of each row, most likely first, as answer token ids; halves the rows on out-of-memory."""
        width = max(len(encoded[i]) for i in rows)
        ids = torch.tensor([[pad] * (width - len(encoded[i])) + encoded[i] for i in rows], device=device)
        mask = (torch.arange(width, device=device)[None, :] >= torch.tensor(
            [width - len(encoded[i]) for i in rows], device=device)[:, None]).long()
        try:
            with attention_kernels(cudnn_allowed(cudnn_attention, decoding=True)):
                out = model.generate(input_ids=ids, attention_mask=mask, num_beams=beams, num_return_sequences=beams,
                                     do_sample=False, max_new_tokens=max_new_tokens, eos_token_id=stops,
                                     pad_token_id=pad, cache_implementation=None)
        except torch.OutOfMemoryError:
            if len(rows) == 1:
                raise
            torch.cuda.empty_cache()
            return candidates(rows[: len(rows) // 2]) + candidates(rows[len(rows) // 2 :])
        answers = out[:, width:].tolist()
        return [answers[k * beams : (k + 1) * beams] for k in range(len(rows))]

    for start in range(0, len(rows), rows_at_once):
        chunk = rows[start : start + rows_at_once]
        for i, beams_of_row in zip(chunk, candidates(chunk)):
            yield i, [first_statement(tokenizer.decode(_until_stop(a, stops, pad), skip_special_tokens=True))
                      for a in beams_of_row]


def runnable(
    model, tokenizer, pairs: list[tuple[str, str]], gens: list[Generation], runs: Callable[[int, str], bool], *,
    beams: int, max_new_tokens: int = 256, batch_size: int = 16, cudnn_attention: bool | None = None,
) -> list[Generation]:
    """Execution-guided decoding: every answer whose SQL does not run (`runs(i, sql)` is false for pair i) is
    decoded again by beam search, and the most likely of its `beams` candidates that runs takes its place; where
    none runs, the greedy answer stays. `runs` sees the database only, never a gold answer, so this is what a
    user's database gives at inference too. Small models often name a column or table that is not there; the
    next beams often do not."""
    if beams < 2:  # nothing to retry with: no need to run the answers
        return gens
    # an answer with no SQL in it does not count as running (SQLite runs an empty string without complaint)
    failing = [i for i, g in enumerate(gens) if not g.sql.strip() or not runs(i, g.sql)]
    if not failing:
        return gens
    gens = list(gens)
    replaced = 0
    for i, sqls in beam_sql(model, tokenizer, pairs, failing, beams=beams, max_new_tokens=max_new_tokens,
                            batch_size=batch_size, cudnn_attention=cudnn_attention):
        k = next((k for k, sql in enumerate(sqls, start=1) if sql.strip() and runs(i, sql)), None)
        if k is not None:
            gens[i] = replace(gens[i], sql=sqls[k - 1], candidate=k, greedy_sql=gens[i].sql)
            replaced += 1
    log.info("execution-guided decoding: %d of %d answers did not pass the database check (run, or return rows "
             "where asked); %d replaced by a beam that does", len(failing), len(gens), replaced)
    return gens


def voted(
    model, tokenizer, pairs: list[tuple[str, str]], gens: list[Generation],
    outcome: Callable[[int, str], Hashable | None], *, beams: int, max_new_tokens: int = 256, batch_size: int = 16,
    cudnn_attention: bool | None = None,
) -> list[Generation]:
    """Execution vote: for every pair, the greedy answer and `beams` beam-search answers are run on the database
    (`outcome(i, sql)`: the result, None where it fails), and the result most candidates agree on wins; a tie
    goes to the likelier candidate (greedy first). Where nothing runs the greedy answer stays. Candidates that
    agree on a result are likelier right than one that stands alone; unlike `runnable` this decodes beams for
    every answer, not only for those that fail."""
    gens = list(gens)
    changed = 0
    for i, sqls in beam_sql(model, tokenizer, pairs, list(range(len(pairs))), beams=beams,
                            max_new_tokens=max_new_tokens, batch_size=batch_size, cudnn_attention=cudnn_attention):
        results = [outcome(i, sql) if sql.strip() else None for sql in [gens[i].sql, *sqls]]
        votes = Counter(r for r in results if r is not None)
        if not votes:
            continue
        k = min(range(len(results)), key=lambda j: (-votes[results[j]] if results[j] is not None else 1, j))
        if k:
            gens[i] = replace(gens[i], sql=sqls[k - 1], candidate=k, greedy_sql=gens[i].sql)
            changed += 1
    log.info("execution vote: %d of %d answers replaced by the result most candidates agree on", changed, len(gens))
    return gens


def execution_guided(
    model, tokenizer, pairs: list[tuple[str, str]], gens: list[Generation], contexts: list[str], *, beams: int,
    vote: bool = False, retry_empty: bool = False, max_new_tokens: int = 256, batch_size: int = 16,
    cudnn_attention: bool | None = None,
) -> list[Generation]:
    """The retry of the answers that do not run (`runnable`; with `retry_empty`, also of those that return no rows)
    or, with `vote`, the execution vote (`voted`), each pair's SQL run on a fresh sandboxed database built from its
    context (the full one, as scoring runs it)."""
    check, runs = (voted, context_outcomes(contexts)) if vote else (
        runnable, context_runner(contexts, rows_needed=retry_empty))
    return check(model, tokenizer, pairs, gens, runs, beams=beams, max_new_tokens=max_new_tokens,
                 batch_size=batch_size, cudnn_attention=cudnn_attention)


def repaired(
    gens: list[Generation], runs: Callable[[int, str], bool], schema: Callable[[int], object]
) -> list[Generation]:
    """Schema repair of the answers that still do not pass the database check (`runs`): the first rewrite of
    `gemsql.repair.repairs` (schema(i): pair i's database schema, None where it cannot be read) that passes takes
    the answer's place. Run after execution-guided decoding, which fixes more, and more surely, where a beam runs."""
    from gemsql.repair import repairs

    gens = list(gens)
    failing = [i for i, g in enumerate(gens) if g.sql.strip() and not runs(i, g.sql)]
    fixed = 0
    for i in failing:
        found = schema(i)
        fix = next((sql for sql in (repairs(gens[i].sql, found) if found else []) if runs(i, sql)), None)
        if fix is not None:
            gens[i] = replace(gens[i], sql=fix, repaired=True, greedy_sql=gens[i].greedy_sql or gens[i].sql)
            fixed += 1
    log.info("schema repair: %d of %d answers did not pass the database check; %d repaired", len(failing), len(gens),
             fixed)
    return gens


def context_schemas(contexts: list[str]) -> Callable[[int], object]:
    """`schema` for `repaired` in evaluation: the schema of pair i's context database (`gemsql.repair.Schema`), read
    once per context; None where the context does not build."""
    from gemsql.repair import database_schema

    cache: dict[str, object] = {}

    def schema(i: int):
        if contexts[i] not in cache:
            cache[contexts[i]] = _on_context_db(contexts[i], database_schema)
        return cache[contexts[i]]

    return schema


def _until_stop(answer: list[int], stops: list[int], pad: int) -> list[int]:
    cut = min((answer.index(t) for t in stops if t in answer), default=len(answer))
    return [t for t in answer[:cut] if t != pad]


def first_statement(text: str) -> str:
    """The SQL of an answer up to the end of its first complete statement (the whole of it if none completes)."""
    sql = extract_sql(text)
    for end, char in enumerate(sql):
        if char == ";" and sqlite3.complete_statement(sql[: end + 1]):
            return sql[: end + 1]
    return sql


def passes(result, rows_needed: bool = False) -> bool:
    """What execution-guided decoding keeps: SQL whose sandbox `Result` ran and, where asked, returned rows."""
    return result is not None and result.ok and (bool(result.rows) or not rows_needed)


def _on_context_db(context: str, fn: Callable[[sqlite3.Connection], object]):
    """fn(con) on a fresh sandboxed database built from a context (the full one, as scoring executes it); None where
    the context does not build: nothing can run or be read there."""
    from gemsql.evaluate.sandbox import memory_db

    try:
        con = memory_db(context)
    except sqlite3.Error:
        return None
    try:
        return fn(con)
    finally:
        con.close()


def _context_results(contexts: list[str]) -> Callable[[int, str], object]:
    """The sandbox `Result` of pair i's SQL on a fresh database built from contexts[i]; None where the context does
    not build (the greedy answer is kept)."""
    from gemsql.evaluate.sandbox import run

    return lambda i, sql: _on_context_db(contexts[i], lambda con: run(con, sql))


def context_outcomes(contexts: list[str]) -> Callable[[int, str], Hashable | None]:
    """`outcome` for the execution vote in evaluation: what pair i's SQL returns on its context's database, as a
    comparable value (its rows in any order); None where it fails to run or the context does not build."""
    result = _context_results(contexts)

    def outcome(i: int, sql: str) -> Hashable | None:
        r = result(i, sql)
        return tuple(sorted(map(repr, r.rows))) if passes(r) else None

    return outcome


def context_runner(contexts: list[str], *, rows_needed: bool = False) -> Callable[[int, str], bool]:
    """`runs` for execution-guided decoding in evaluation: pair i's SQL runs without error on its context's database
    and, with `rows_needed`, returns at least one row."""
    result = _context_results(contexts)
    return lambda i, sql: passes(result(i, sql), rows_needed)


def generate(
    model: str,
    *,
    adapter: str | None = None,
    pairs: list[tuple[str, str]],
    output: str | Path | None = None,
    extra: list[dict] | None = None,
    max_new_tokens: int = 256,
    batch_size: int = 16,
    stop_at_statement_end: bool = True,
    cudnn_attention: bool | None = None,
    guided_beams: int = 0,
    vote: bool = False,
    retry_empty: bool = False,
    repair: bool = False,
) -> list[Generation]:
    """Generate for `pairs` and, with `output`, write one JSONL row per pair (all or nothing).

    Each row holds the pair's question and context unless `extra` gives its own (a test row keeps
    its full context for execution while the prompt showed a shortened one). `guided_beams` >= 2: answers that
    do not run on their context's database (with `retry_empty`, or return no rows) are decoded again with that many
    beams (`runnable`); with `vote`, every answer gets that many beams and the result most candidates agree on wins
    (`voted`). `repair`: answers that still fail get a schema repair where one runs (`repaired`)."""
    from gemsql.files import write_jsonl

    extra = extra or [{} for _ in pairs]
    m, tok = load_for_generation(model, adapter)
    gens = generate_sql(m, tok, pairs, max_new_tokens=max_new_tokens, batch_size=batch_size,
                        stop_at_statement_end=stop_at_statement_end, cudnn_attention=cudnn_attention)
    contexts = [x.get("context", c) for x, (_, c) in zip(extra, pairs)]
    if guided_beams >= 2:
        gens = execution_guided(m, tok, pairs, gens, contexts, beams=guided_beams, vote=vote, retry_empty=retry_empty,
                                max_new_tokens=max_new_tokens, batch_size=batch_size, cudnn_attention=cudnn_attention)
    if repair:
        gens = repaired(gens, context_runner(contexts, rows_needed=retry_empty), context_schemas(contexts))
    if output is not None:
        write_jsonl(
            output,
            (
                {"question": q, "context": c, **x, "prompt_context": c, "prediction": g.sql, "raw": g.raw, "stop_reason": g.stop_reason,
                 "new_tokens": g.new_tokens, "candidate": g.candidate, **({"repaired": True} if g.repaired else {}),
                 **({"greedy_prediction": g.greedy_sql} if g.greedy_sql is not None else {})}
                for (q, c), g, x in zip(pairs, gens, extra)
            ),
        )
    return gens

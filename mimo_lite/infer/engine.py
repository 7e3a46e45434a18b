"""Continuous batching: new requests join while others decode; each finished one is reported at once.

Static batching waits for the longest sequence of a batch before starting the next batch, so
the rows that finished early sit idle. Here every step

  1. decodes one token for every active row (one forward pass over the batch), and releases the
     rows that finished: their completions are returned by this very step;
  2. admits waiting requests into the free rows: one prefill pass over their prompts, which
     also samples their first token.

This is the generation side of MiMo's "continuous rollout" (report §3.4.1, facts file §5.1): a
finished rollout goes to the reward as soon as it ends, and a new one takes its place.

Rows stay packed: when row r finishes, the last active row moves into it (K/V included), so the
active rows are always cache rows 0..n-1 and each step attends over one contiguous slice.

A run lasts from a step that finds no row decoding to the step that finishes the last one. It
starts by taking the model as it is then (`fused.decoder_for`): weights changed between runs are
always used; weights changed during a run, from the next run (see decoder_for for why).

Requests join at any step (`add_request`) and leave early when asked (`abort`): an aborted
request returns what it generated so far and its row goes to the next waiting request. Each
completion carries the `policy_version` it was generated under. MiMo's RL is on-policy (no
stale rollouts, facts file §5.1), so the version, and with it the weights, changes only while
no request is running: `set_policy` refuses otherwise, and every completion is one policy's.

Sampling draws from one random stream shared by the batch (`SamplingParams.seed`), or, for a
request added with its own `seed`, from that request's own stream: then its tokens do not depend
on which other requests share its batch, or when they join or leave.

On a GPU the decode step replays a CUDA graph (`graphs.py`): `decode="graphs"`, the default
there. `decode="eager"` (the default on a CPU) runs the step op by op over the slice of the cache
the rows fill; `decode="static"` runs the graphs' static-shape step without recording it, on any
device. The three give the same tokens up to float rounding; prefill is always eager.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import torch

from .cache import KVCache
from .fused import FusedDecoder, decoder_for
from .graphs import borrow, give_back
from .sampling import SamplingParams, probabilities, sample, token_logprobs


@dataclass
class Completion:
    """One finished request: the generated `tokens`, the log-probability of each, why it ended.

    finish_reason: "stop" (a stop token or stop string), "length" (max_new_tokens or the
    context) or "abort" (`Engine.abort`: the tokens generated until then). Steps are engine
    steps: arrival (add_request), start (prefill), end (finished). policy_version: the engine's
    version when the request started (None if it was aborted before starting).
    """

    request_id: int
    prompt: list[int]
    tokens: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    finish_reason: str | None = None
    text: str | None = None
    arrival_step: int = 0
    start_step: int | None = None
    end_step: int | None = None
    policy_version: int | None = None


class StopRule:
    """Decides, token by token, whether a completion has ended (shared with speculative decoding)."""

    def __init__(self, params: SamplingParams, tokenizer=None):
        if params.stop_strings and tokenizer is None:
            raise ValueError("stop_strings can only be matched on decoded text: pass tokenizer=... "
                             "(anything with a .decode(list_of_ids) method).")
        self.stop_ids = frozenset(params.stop_token_ids)
        self.stop_strings = params.stop_strings
        # a stop string of c characters is spelled by at most c tokens (each decodes to ≥ 1 char)
        self.window = max((len(s) for s in self.stop_strings), default=0)
        self.tokenizer = tokenizer

    def __call__(self, tokens: list[int], max_new: int) -> str | None:
        if tokens[-1] in self.stop_ids:
            return "stop"
        if self.stop_strings:
            tail = self.tokenizer.decode(tokens[-self.window:])
            if any(s in tail for s in self.stop_strings):
                return "stop"
        if len(tokens) >= max_new:
            return "length"
        return None


@dataclass
class _Row:
    completion: Completion
    max_new: int
    length: int          # tokens of this row held in the cache
    generator: torch.Generator | None    # the request's own random stream, or None: the shared one


class Engine:
    """Generates for requests as they arrive, at most `max_batch_size` at a time.

        engine = Engine(model, SamplingParams(temperature=0), max_batch_size=32)
        engine.add_request(prompt_ids)
        while engine.has_unfinished():
            for completion in engine.step():   # the requests that finished in this step
                ...

    `max_length` (prompt + completion, default the model's context) sizes the preallocated KV
    cache (`reserve` grows it); `tokenizer` is needed for stop strings and fills `Completion.text`.
    `decode`: "graphs", "static" or "eager" (see the module docstring); "auto" is "graphs" on CUDA,
    "eager" elsewhere. A model that is not plain (LoRA, hooks: see `fused.decoder_for`) decodes
    eagerly whatever `decode` says.
    Between steps: `add_request`, `abort(ids)`, and, while no request runs, `set_policy(version)`.
    """

    def __init__(self, model, params: SamplingParams, max_batch_size: int = 32,
                 max_length: int | None = None, tokenizer=None, decode: str = "auto"):
        context = model.config.max_position_embeddings
        max_length = context if max_length is None else max_length
        if not 1 < max_length <= context:
            raise ValueError(f"max_length={max_length} must lie in [2, {context}], the model's "
                             f"context (max_position_embeddings).")
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be ≥ 1, got {max_batch_size}.")
        self.model, self.params, self.tokenizer = model, params, tokenizer
        self.max_batch_size, self.max_length = max_batch_size, max_length
        self.stop = StopRule(params, tokenizer)
        self.device = model.lm_head.weight.device
        if decode == "auto":
            decode = "graphs" if self.device.type == "cuda" else "eager"
        if decode not in ("graphs", "static", "eager"):
            raise ValueError(f'decode must be "auto", "graphs", "static" or "eager", got {decode!r}.')
        if decode == "graphs" and self.device.type != "cuda":
            raise ValueError(f'decode="graphs" records CUDA graphs, but the model is on {self.device}: '
                             f'use "static" to run the same static-shape step without recording it.')
        self.decode_mode = decode
        self.generator = params.generator(self.device)
        self.graphs = None          # the cache, with the decode steps recorded over it (not eager)
        with torch.inference_mode():
            if decode == "eager":
                self.cache = KVCache.for_model(model, max_batch_size, max_length, include_mtp=False)
            else:
                self.graphs = borrow(model, self, max_batch_size, max_length, decode == "graphs")
                self.cache = self.graphs.cache
        self.decoder = None                                       # chosen as each run starts
        self.rows: list[_Row] = []                                # active: cache rows 0..n-1
        self.next_tokens = torch.empty(0, dtype=torch.long, device=self.device)  # fed next step
        self.ahead = None           # logits of the next step, launched early (see _decode)
        self.waiting: deque[tuple[Completion, int, torch.Generator | None]] = deque()
        self.policy_version = 0
        self.steps = 0
        self._next_id = 0

    def add_request(self, prompt: Sequence[int], max_new_tokens: int | None = None,
                    request_id: int | None = None, seed: int | None = None) -> int:
        """Queue a prompt (token ids); returns its request id. It starts at the next step.

        With a `seed` the request samples from its own random stream (see the module docstring).
        """
        prompt = list(prompt)
        vocab = self.model.config.vocab_size
        if not prompt:
            raise ValueError("A prompt must hold at least one token.")
        if min(prompt) < 0 or max(prompt) >= vocab:
            raise ValueError(f"Prompt token ids must lie in [0, {vocab}) (the vocabulary), got "
                             f"{min(prompt)}..{max(prompt)}.")
        if len(prompt) >= self.max_length:
            raise ValueError(f"A prompt of {len(prompt)} tokens leaves no room in a context of "
                             f"{self.max_length} tokens: shorten the prompt or raise max_length "
                             f"(the model's context is {self.model.config.max_position_embeddings}).")
        max_new = self.params.max_new_tokens if max_new_tokens is None else max_new_tokens
        if max_new < 1:
            raise ValueError(f"max_new_tokens must be ≥ 1, got {max_new}.")
        if request_id is None:
            request_id = self._next_id
        self._next_id = max(self._next_id, request_id) + 1
        generator = None
        if seed is not None:
            generator = torch.Generator(device=self.device).manual_seed(seed)
        completion = Completion(request_id, prompt, arrival_step=self.steps)
        self.waiting.append((completion, min(max_new, self.max_length - len(prompt)), generator))
        return request_id

    def has_unfinished(self) -> bool:
        return bool(self.rows or self.waiting)

    @torch.inference_mode()
    def abort(self, request_ids: Iterable[int]) -> list[Completion]:
        """Stop these requests now; returns their completions, finish_reason "abort".

        A running request keeps the tokens and log-probs it generated; one still waiting has none.
        Its cache row is free for the next waiting request at the next step. Ids that already
        finished (or were never added) are skipped: a request may end in the step before its abort.
        """
        ids = set(request_ids)
        aborted = [c for c, _, _ in self.waiting if c.request_id in ids]
        self.waiting = deque(w for w in self.waiting if w[0].request_id not in ids)
        rows = [i for i, row in enumerate(self.rows) if row.completion.request_id in ids]
        aborted += [self.rows[i].completion for i in rows]
        for c in aborted:
            c.finish_reason, c.end_step = "abort", self.steps
            if self.tokenizer is not None:
                c.text = self.tokenizer.decode(c.tokens)
        if rows:
            self._release(rows)
        return aborted

    def set_policy(self, version: int) -> None:
        """Label the completions of requests started from now on with `version` (the trainer's
        step count); call it after changing the weights, while no request is running."""
        if self.rows:
            raise RuntimeError(
                f"Cannot change the policy version to {version} while {len(self.rows)} requests "
                f"are running under version {self.policy_version}: MiMo's rollouts are on-policy, "
                f"so finish or abort them (engine.abort) before changing the weights.")
        self.policy_version = version

    def reserve(self, length: int) -> None:
        """Let every row hold `length` tokens (prompt + completion), reallocating a shorter KV
        cache; running requests keep their keys and values."""
        context = self.model.config.max_position_embeddings
        if not 1 < length <= context:
            raise ValueError(f"Rows of {length} tokens do not fit the model's context of {context} "
                             f"tokens (max_position_embeddings): shorten the prompt or max_new_tokens.")
        if length <= self.max_length:
            return
        with torch.inference_mode():
            if self.graphs is None:
                cache = KVCache.for_model(self.model, self.max_batch_size, length, include_mtp=False)
            else:
                old, self.graphs = self.graphs, borrow(self.model, self, self.max_batch_size, length,
                                                       self.decode_mode == "graphs")
                give_back(old)
                if isinstance(self.decoder, FusedDecoder):
                    self.graphs.use(self.decoder)
                cache = self.graphs.cache
            cache.k[:, :, :, :self.max_length] = self.cache.k     # (layers, batch, KV heads, max_length, d)
            cache.v[:, :, :, :self.max_length] = self.cache.v
        self.cache, self.max_length, self.ahead = cache, length, None

    def run(self) -> Iterator[Completion]:
        """Step until every request has finished, yielding each completion as it finishes."""
        while self.has_unfinished():
            yield from self.step()

    @torch.inference_mode()
    def step(self) -> list[Completion]:
        """Decode one token for every active row, then admit waiting requests into free rows."""
        self.steps += 1
        if not self.rows and self.waiting:      # a run starts: the weights as they are now
            self.decoder = decoder_for(self.model)
            if self.graphs is not None and isinstance(self.decoder, FusedDecoder):
                self.graphs.use(self.decoder)
        finished: list[Completion] = []
        if self.rows:
            self._decode(finished)
        if self.waiting and len(self.rows) < self.max_batch_size:
            self._prefill(finished)
        return finished

    def _decode(self, finished: list[Completion]) -> None:
        n = len(self.rows)
        lengths = [row.length for row in self.rows]
        static = self.graphs is not None and isinstance(self.decoder, FusedDecoder)
        if static:
            logits = self.graphs.decode(self.next_tokens, lengths) if self.ahead is None else self.ahead
        else:
            shortest, longest = min(lengths), max(lengths)
            if shortest == longest:     # every row equally long: a plain slice, no mask needed
                window = self.cache.window(longest, 1, rows=slice(0, n))
            else:
                starts = torch.tensor(lengths, device=self.device)
                window = self.cache.window(starts, 1, rows=slice(0, n), span=longest + 1)
            h = self.decoder.forward(self.next_tokens[:, None], window)           # (n, 1, D)
            logits = self.decoder.logits(h[:, -1])                                 # (n, V)
        for row in self.rows:
            row.length += 1
        tokens, logprobs = self._sample(logits, self.rows)
        self.next_tokens = tokens
        self.ahead = None
        if static and max(lengths) + 2 <= self.max_length:
            # launch the next step now, so the GPU computes it while this step's tokens are
            # recorded and checked; it is used if no row ends or joins meanwhile (_release and
            # _prefill drop it). Its K, V writes are the next step's own, or land in columns
            # beyond a row's length, which the mask hides until a real step overwrites them.
            self.ahead = self.graphs.decode(tokens, [length + 1 for length in lengths])
        self._append(0, tokens, logprobs, finished)

    def _prefill(self, finished: list[Completion]) -> None:
        self.ahead = None
        first = len(self.rows)
        admitted = [self.waiting.popleft()
                    for _ in range(min(self.max_batch_size - first, len(self.waiting)))]
        lengths = [len(c.prompt) for c, _, _ in admitted]
        # right padding: row i's padded tail lands beyond its length, so it is masked, then overwritten
        ids = torch.zeros(len(admitted), max(lengths), dtype=torch.long)
        for i, (c, _, _) in enumerate(admitted):
            ids[i, :len(c.prompt)] = torch.tensor(c.prompt)
        window = self.cache.window(0, ids.shape[1], rows=slice(first, first + len(admitted)))
        h = self.decoder.forward(ids.to(self.device), window)                     # (m, T, D)
        last = torch.tensor(lengths, device=self.device) - 1
        h_last = h[torch.arange(len(admitted), device=self.device), last]          # (m, D)
        logits = self.decoder.logits(h_last)
        for (c, max_new, generator), length in zip(admitted, lengths):
            c.start_step, c.policy_version = self.steps, self.policy_version
            self.rows.append(_Row(c, max_new, length, generator))
        tokens, logprobs = self._sample(logits, self.rows[first:])
        self.next_tokens = torch.cat([self.next_tokens, tokens])
        self._append(first, tokens, logprobs, finished)

    def _sample(self, logits: torch.Tensor, rows: list[_Row]) -> tuple[torch.Tensor, torch.Tensor]:
        """Next tokens (B,) and log-probs (B,) for `rows`: one draw from the shared stream for the
        rows without a seed of their own; for the others, one uniform u from each row's stream."""
        own = [i for i, row in enumerate(rows) if row.generator is not None]
        if self.params.greedy or not own:
            return sample(logits, self.params, self.generator)
        tokens = torch.empty(len(rows), dtype=torch.long, device=self.device)
        if len(own) < len(rows):
            shared = torch.tensor([i for i, row in enumerate(rows) if row.generator is None],
                                  device=self.device)
            tokens[shared] = sample(logits[shared], self.params, self.generator)[0]
        own_rows = torch.tensor(own, device=self.device)
        cdf = probabilities(logits[own_rows], self.params).cumsum(-1)                 # (m, V)
        u = torch.stack([torch.rand((), generator=rows[i].generator, device=self.device) for i in own])
        # inverse-CDF sampling: the first token x with F(x) > u·F(V) (u·F(V): F(V) may round below 1)
        tokens[own_rows] = torch.searchsorted(cdf, (u * cdf[:, -1])[:, None], right=True)[:, 0]
        return tokens, token_logprobs(logits, tokens, self.params)

    def _append(self, first: int, tokens: torch.Tensor, logprobs: torch.Tensor,
                finished: list[Completion]) -> None:
        """Record the sampled token of rows first.., then release the rows that ended."""
        done = []
        for i, (token, logprob) in enumerate(zip(tokens.tolist(), logprobs.tolist()), start=first):
            row = self.rows[i]
            c = row.completion
            c.tokens.append(token)
            c.logprobs.append(logprob)
            reason = self.stop(c.tokens, row.max_new)
            if reason:
                c.finish_reason, c.end_step = reason, self.steps
                if self.tokenizer is not None:
                    c.text = self.tokenizer.decode(c.tokens)
                finished.append(c)
                done.append(i)
        if done:
            self._release(done)

    def _release(self, done: list[int]) -> None:
        """Drop finished (or aborted) rows, moving the last active row into each hole (highest hole first)."""
        self.ahead = None
        order = list(range(len(self.rows)))
        for r in sorted(done, reverse=True):
            last = len(self.rows) - 1
            if r != last:
                self.cache.move_row(last, r, self.rows[last].length)
                self.rows[r], order[r] = self.rows[last], order[last]
            self.rows.pop()
            order.pop()
        self.next_tokens = self.next_tokens[torch.tensor(order, dtype=torch.long, device=self.device)]

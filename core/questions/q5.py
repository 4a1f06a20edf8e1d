"""Q5 — a character-level transformer that writes poems.

Data: the poetry set, lists of poems (str). The tokenizer (core.text.CharTokenizer) has one token per distinct
character of the TRAINING poems plus <bos> (id 0) and <eos> (id 1); every poem is wrapped as <bos> poem <eos>.

Windows (core.text.poem_windows): each wrapped poem is cut on its own into rows of context + 1 tokens with
stride `context` (consecutive rows of a poem share one token; a poem's last row is padded with targets the loss
ignores). Each row gives up to `context` (input, target) pairs. So every poem's first row starts with <bos> at
position 0, exactly as unconditional sampling starts, and no window spans two poems. (Cutting one stream of all
poems instead would put <bos> at position 0 in only ~1 window in 128, and the first character of a sample would
come out poorly.) `data_fraction` keeps a random (seeded) subset of the rows.

Test loss, in nats per character: the test poems are cut the same way, and the loss is the mean cross-entropy
over EVERY predicted token: each character and the closing <eos> of every test poem (its <bos> is given, not
predicted), weighted by token count, so padding counts for nothing. Characters of the test poems unseen in
training are mapped as core.text documents.

Sampling (`generate`): starts from <bos> (+ an optional prompt), never emits <bos>, and once a sample has
written <eos> it only writes <eos>, so nothing continues past the end of a poem; texts are cut at <eos>.
A prompt longer than context - 1 characters is cut from the left (the model could not see more); samples
longer than the context slide the window (the model sees the last `context` tokens).
"""
from __future__ import annotations

import math

import torch

from .. import memory
from ..context import RunContext, epoch_name
from ..models.transformer import Transformer, forbid, lm_loss, sample
from ..text import CharTokenizer, poem_windows
from ..train import TrainConfig, fit, stop_check, subset
from .base import Data, Field, Question, Trained, test_sample_field, transformer_check, transformer_fields

PAD = -100          # target id the loss ignores (padding of the last window)
VOCAB = 100         # about the characters of the poems + <bos>, <eos> (for the memory estimate)
N_FINAL, FINAL_LEN = 5, 128  # the deliverable: 5 samples of up to 128 characters

FIELDS = (
    Field("context", 128, 8, 512, help="tokens the model sees (window length)"),
    *transformer_fields(2, epochs=(5, 100), batch=(16, 1024), warmup=100,
                        epochs_help="passes over the training windows", batch_help="windows per minibatch"),
    Field("data_fraction", 1.0, 0.001, 1.0, label="data fraction",
          help="share of the training windows used (a seeded random subset)"),
    test_sample_field("test windows"),
    Field("samples_per_epoch", 3, 0, 10, label="samples per epoch", help="poems written after every epoch"),
    Field("temperature", 1.0, 0.0, 5.0, help="for the samples written during training (0 = greedy)"),
)
PRESETS = {  # quick first: it is the default off a GPU
    # Q3's suggested sizes: 1.866 nats/char in 121 s on the 2-core box (bench.system.first_minutes)
    "quick": {"d_model": 128, "heads": 4, "layers": 2, "samples_per_epoch": 2, "test_sample": 1000},
    # larger than Q3's suggested sizes (the homework allows it): 1.75 nats/char in ~9 s on an H100
    "homework": {"d_model": 256, "heads": 8, "layers": 4},
}


def loss_fn(model, rows):
    """rows (B, context + 1) -> (mean nats per predicted token, number of predicted tokens)."""
    x, y = rows[:, :-1].clamp(min=0), rows[:, 1:]  # padded inputs only feed ignored targets (causal)
    return lm_loss(model(x), y, ignore_index=PAD), int((y != PAD).sum())


def tokenizer_from_config(config: dict) -> CharTokenizer:
    return CharTokenizer(config["chars"])


def model_config(tok: CharTokenizer, hp: dict) -> dict:
    """What a checkpoint stores: the characters (its tokenizer) and the TransformerConfig fields
    (`Transformer.from_config` rebuilds the model, `tokenizer_from_config` the tokenizer)."""
    return {"question": "q5", "chars": tok.chars, "vocab_size": len(tok.chars) + 2, "block_size": int(hp["context"]),
            "d_model": int(hp["d_model"]), "n_heads": int(hp["heads"]), "n_layers": int(hp["layers"])}


def prepare_prompt(tok: CharTokenizer, prompt: str, context: int):
    """-> (prefix ids, notices). Prefix = <bos> + prompt; unseen characters mapped (and said so); if longer than
    context - 1 tokens, only its last context - 1 are kept (one position is needed for the first new token)."""
    notices = []
    bad = tok.unseen(prompt)
    if bad:
        shown = ", ".join(f"{c!r} → {r!r}" for c, r in bad.items())
        notices.append(f"These characters never appear in the training poems, so they were replaced: {shown}.")
    ids = [tok.bos] + tok.encode(prompt)
    if len(ids) > context - 1:
        notices.append(f"The prompt has {len(prompt)} characters but the model sees only {context} tokens, so only "
                       f"its last {context - 1} characters are used.")
        ids = ids[-(context - 1):]
    return ids, notices


def poem_hook(tok, ended_before):
    """Never write <bos>; once a sample has written <eos> (in this call or before: ended_before (n,) bool),
    only <eos> (the poem has ended)."""
    no_bos = forbid(tok.bos)

    def hook(step, tokens, logits):
        logits = no_bos(step, tokens, logits)
        ended = ended_before | (tokens == tok.eos).any(1)
        logits[ended] = float("-inf")
        logits[ended, tok.eos] = 0.0
        return logits
    return hook


def generate_ids(model, tok, n: int, length: int, prefix, temperature: float = 1.0, top_k: int | None = None,
                 seed: int = 0, on_step=None) -> torch.Tensor:
    """n samples of `length` new tokens after `prefix` (ids), sliding the window past the context.
    -> (n, len(prefix) + length) ids; after a sample's first <eos> every id is <eos>.
    on_step(i): called after the i-th new token (0-based) of every sample is drawn (a progress bar)."""
    T = model.config.block_size
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(seed)  # a CPU generator: the same samples on any device
    out = torch.as_tensor(prefix, dtype=torch.long, device=device).expand(n, -1)
    if out.shape[1] > T - 1:
        raise ValueError(f"prefix of {out.shape[1]} tokens leaves no room in the context ({T})")
    todo = length
    while todo > 0 and not (out == tok.eos).any(1).all():
        step = min(todo, max(T // 2, T - out.shape[1]))  # new tokens this round
        keep = min(out.shape[1], T - step)                # tokens of context they see
        hook = poem_hook(tok, (out == tok.eos).any(1))   # an <eos> that slid out of view still ends its sample
        done = length - todo
        new = sample(model, n, step, prefix=out[:, -keep:], generator=gen, temperature=temperature,
                     top_k=top_k, logits_hook=hook,
                     step_callback=None if on_step is None else (lambda s, *_: on_step(done + s)))[:, keep:]
        out = torch.cat([out, new], 1)
        todo -= step
    if todo > 0:  # every sample ended early: pad with <eos>
        out = torch.cat([out, torch.full((n, todo), tok.eos, dtype=torch.long, device=device)], 1)
    return out


def stepper(model, tok: CharTokenizer, prompt: str = ""):
    """Writing one character at a time with the sampler's own probabilities and rules (never <bos>; after <eos>
    only <eos>): a core.nexttoken.Stepper after <bos> + the prompt (cut as `generate` cuts it)."""
    from ..nexttoken import Stepper

    ids, _ = prepare_prompt(tok, prompt, model.config.block_size)
    return Stepper(model, ids, logits_hook=poem_hook(tok, torch.zeros(1, dtype=torch.bool)))


def generate(model, tok, n: int = N_FINAL, length: int = FINAL_LEN, prompt: str = "", temperature: float = 1.0,
             top_k: int | None = None, seed: int = 0, on_step=None) -> tuple[list[str], list[str]]:
    """-> (n texts, notices). Each text is the (possibly truncated) prompt + up to `length` new characters,
    cut at <eos>. on_step(i): after each new character (see generate_ids)."""
    prefix, notices = prepare_prompt(tok, prompt, model.config.block_size)
    ids = generate_ids(model, tok, n, length, prefix, temperature, top_k, seed, on_step)
    used = tok.decode(prefix)
    return [used + tok.decode(row[len(prefix):]) for row in ids.cpu()], notices


class PoetryQ(Question):
    key, title = "q5", "Character-level poet"
    datasets = ("poetry",)
    fields = FIELDS
    presets = PRESETS
    unit = "nats/char"
    students = {"poetry": (1.60, 2.13)}   # final test losses students reached on the original set
    heading = "Question 5: Causal Transformer on Text — (a) Poetry"
    quick_seconds = {None: 121}
    numbered_files = False

    memory_fields = ("batch_size", "d_model", "batch size, context, d_model or layers")
    architecture = ("context", "d_model", "heads", "layers")
    # from a trained poet: a tenth of the peak rate, a short warm-up, one pass over half the windows
    finetune = {"epochs": 1, "lr": 1e-4, "warmup_steps": 10, "data_fraction": 0.5, "samples_per_epoch": 1,
                "test_sample": 500}

    def check(self, hp, dataset):
        return {**super().check(hp, dataset), **transformer_check(hp)}

    def memory(self, hp, dataset):
        return memory.transformer(hp["batch_size"], hp["context"], hp["d_model"], hp["layers"], VOCAB)

    def train(self, data: Data, hp: dict, *, seed: int = 0, device: str = "cpu",
              ctx: RunContext | None = None) -> Trained:
        """Fit on lists of poems; extras: the tokenizer ("tokenizer") and counts. After every epoch it writes
        `samples_per_epoch` poems and emits them (artifact kind "text", with epoch and texts)."""
        hp = self.hparams(hp)
        ctx = ctx or RunContext()
        train_poems, test_poems = data.train, data.test
        if isinstance(train_poems, str):
            train_poems = [train_poems]
        if isinstance(test_poems, str):
            test_poems = [test_poems]
        if not "".join(train_poems):
            raise ValueError("the training poems are empty")
        tok = CharTokenizer.from_texts(train_poems)
        T = hp["context"]
        train_rows = poem_windows(tok, train_poems, T, PAD)
        n_all = len(train_rows)
        train_rows = subset(train_rows, hp["data_fraction"], seed)
        test_rows = poem_windows(tok, test_poems, T, PAD)
        unseen = tok.unseen("".join(test_poems))
        info = {"vocab_size": tok.vocab_size, "train_windows": len(train_rows), "all_train_windows": n_all,
                "test_tokens": int((test_rows[:, 1:] != PAD).sum()), "unseen_test_chars": unseen}
        ctx.emit("meta", **info, ln_vocab=math.log(tok.vocab_size))

        torch.manual_seed(seed)
        config = model_config(tok, hp)
        model = Transformer.from_config(config)

        def on_epoch_end(epoch, m):
            k = hp["samples_per_epoch"]
            if k and ctx.keeps:
                texts, _ = generate(m, tok, k, FINAL_LEN, temperature=hp["temperature"], seed=seed + epoch,
                                    on_step=stop_check(ctx, f"writing the epoch {epoch} samples"))
                ctx.emit("artifact", kind="text", name=epoch_name("samples", epoch), epoch=epoch, texts=texts)

        cfg = TrainConfig(epochs=hp["epochs"], batch_size=hp["batch_size"], lr=hp["lr"],
                          warmup_steps=hp["warmup_steps"], schedule="cosine", seed=seed, device=device,
                          test_sample=hp["test_sample"])
        res = fit(model, loss_fn, train_rows, test_rows, cfg, ctx, on_epoch_end)
        return Trained(model.eval(), config, res, {"tokenizer": tok, **info})

    def final_samples(self, model, tok, hp: dict, seed: int = 0, on_step=None) -> list[str]:
        """The deliverable: 5 unconditional samples of up to 128 characters, cut at <eos>."""
        return generate(model, tok, N_FINAL, FINAL_LEN, temperature=hp["temperature"], seed=seed, on_step=on_step)[0]

    def finish(self, trained, data, hp, spec, ctx) -> dict:
        tok = trained.extras["tokenizer"]
        ctx.progress(0.0, "writing the 5 final samples")
        samples = self.final_samples(trained.model, tok, hp, spec.seed, stop_check(ctx, "writing the final samples"))
        ctx.emit("artifact", kind="text", name="samples", epoch=hp["epochs"], texts=samples, final=True)
        info = {k: v for k, v in trained.extras.items() if k != "tokenizer"}
        return {**self.summary(trained), "ln_vocab": math.log(tok.vocab_size), "samples": samples, **info}

    def rebuild(self, config):
        return Transformer.from_config(config)

    def test_loss(self, model, config, test, loaded, device, batch_size):
        from ..train import evaluate

        rows = poem_windows(tokenizer_from_config(config), test, int(config.get("block_size") or config["context"]),
                            PAD)
        return evaluate(model, loss_fn, rows, 64, device)

    # -- the write-up: the train plot and the final poems, as text
    def _samples_figure(self, dataset, texts):
        from .. import figures

        return lambda p: figures.text_figure(p, texts, self.figure_title(dataset, "Samples"))

    def run_figures(self, run):
        from .. import figures

        names = self.figure_names(run.dataset)
        out = {names[0]: super().run_figures(run)[names[0]]}
        texts = run.result.get("samples")
        if texts:
            run.extra["samples"] = texts
            out[names[1]] = figures.Figure(self._samples_figure(run.dataset, texts))
        else:
            out[names[1]] = "the run wrote no final samples"
        return out

    def pretrained_figures(self, model, config, entry, *, seed=0, device="cpu", extra=None):
        texts, _ = generate(model, tokenizer_from_config(config), N_FINAL, FINAL_LEN, seed=seed)
        if extra is not None:
            extra["samples"] = texts
        return {self.figure_names(entry["dataset"])[1]: self._samples_figure(entry["dataset"], texts)}


POETRY = PoetryQ()


# ----- the page's words (numbers from the run's settings and the corpus loaded)
def on_course_set() -> bool:
    """Whether the poetry set loaded is the course's own (Hugging Face merve/poetry: core.data.load reads it when
    ARLAB_POETRY=hf), not the default corpus."""
    import os

    return os.environ.get("ARLAB_POETRY") == "hf"


def students_text(course_set: bool, n_poems: int | None = None) -> str:
    """Where the students' final test losses come from, and how far they carry to the corpus here."""
    lo, hi = POETRY.students["poetry"]
    if course_set:
        return f"Students reached {lo:.2f}–{hi:.2f} nats/char on this set."
    corpus = f" ({n_poems} poems of public-domain verse)" if n_poems else ""
    return (f"Students on the course's own poetry set reached {lo:.2f}–{hi:.2f} nats/char; this corpus{corpus} "
            "differs, so read it as a rough guide.")


def intro(context: int, n_test: int | None, course_set: bool, n_poems: int | None = None) -> str:
    """The page's bullets on training, loss and writing, for windows of `context` tokens and `n_test` test poems
    (None: the set is not loaded)."""
    test = f"the {n_test} test poems" if n_test else "the test poems"
    return (f"- **Training:** every poem is cut into windows of {context} tokens, the **context** setting (a poem's "
            "first window starts with `<bos>`); at every position the model predicts the next character from the "
            "ones before it (the causal mask hides the future).\n"
            f"- **Loss:** the mean negative log-likelihood per character on {test}, in **nats/char**. A model that "
            "knows nothing guesses uniformly: ln(vocabulary) nats/char (below). "
            f"{students_text(course_set, n_poems)}\n"
            "- **Writing:** start from `<bos>` (or from your own line), draw one character at a time, feed it back, "
            "and stop at `<eos>`. Watch the samples below each epoch: first random letters, then words and line "
            "breaks, then something with the shape of verse.")


def against_students(loss: float, course_set: bool) -> str:
    """A final test loss held against the students' range: inside, below or above it (on which set)."""
    lo, hi = POETRY.students["poetry"]
    where = "inside" if lo <= loss <= hi else ("below" if loss < lo else "above")
    return f"{where} the students' {lo:.2f}–{hi:.2f}" + ("" if course_set else
                                                           " (on the course's set: a rough guide)")

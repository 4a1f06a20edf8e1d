"""Q6 — one transformer over caption words and VQ image tokens: captions for pictures, pictures for captions.

Data: `mnist-v2` (a solid-colour digit on a solid background) with its 6-word captions, e.g. "light green five on
dark blue" (each drawn colour named by its one phrase, see core.data.colour_mnist); images become 49 tokens with
Q4's tokenizer ("pretrained" = the shipped `vqvae-mnist-v2`).

Vocabulary (`Vocab`): ids 0..K-1 are the tokenizer's codes, then one id per word the captions' language has (31,
sorted; v2's captions never say "normal", which only repeats "plain"), then <end of text>, <end of image> and <bos>. Every training sequence has 58 tokens, in one of
two layouts, drawn 50/50 afresh for every sequence of every minibatch:

    text first:  <bos> <end of image> w1 .. w6 <end of text> c1 .. c49
    image first: <bos> <end of text> c1 .. c49 <end of image> w1 .. w6

(the end token after <bos> announces which modality comes next). Loss: cross-entropy in nats per predicted token,
averaged over all 57 tokens after <bos> (the opening end token, the 6 words, the other end token, the 49 codes).
The test loss scores every test pair in BOTH layouts (the exact expectation of the 50/50 draw, no sampling noise).

Sampling goes through the shared sampler (KV cache on) with one logits hook, `constrain`: the first token is one
of the two end tokens; after <end of image> come exactly six words, then <end of text>; after <end of text>
exactly 49 image codes, then <end of image>. So a sample never mixes modalities, captions have six words and
images 49 codes, from any model, trained or not.

Agreement (the lesson, measured): for captions drawn for test images, the share of the 5 judged words (digit, both
colour words, both modifiers) that are the words of the image's own caption (`words_true`; each drawn colour has
one phrase, so a word is right only as that phrase says it); for images drawn for test captions, the share whose digit (by a small classifier trained on the
v2 training images, core.models.digits) and both colours (read from the pixels) match the caption.

Here: the question. Beside it: vocab.py (vocabulary, sequences, loss), sampling.py (constrained sampling) and
agreement.py (the agreement instrument and its digit classifier); their names are re-exported here (q6.Vocab,
q6.captions_for, q6.agreement, ...).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ... import sources
from ...context import RunContext, epoch_name
from ...data.colour_mnist import CAPTION_WORDS
from ...models.transformer import Transformer
from ...train import TrainConfig, fit, stop_check, subset_indices
from .. import q4
from ..base import Data, Field, Question, Trained, test_sample_field, transformer_fields
from .agreement import (CAPTION_RULE, DIGIT_CLASSIFIER, DIGIT_READER, N_AGREE, WORD_PARTS, agreement,  # noqa: F401
                        images_match, labels_of, load_digit_classifier, parse, read_colours, renamed_caption, rgb,
                        train_digit_classifier, word_hits, words_true)
from .sampling import (_chunks, _complete, _generate, allowed, captions_for, codes_for, constrain,  # noqa: F401
                       readable, stepper, unconditional)
from .vocab import (SEQ_LEN, TOKENS, WORDS, UnknownWords, Vocab, loss_fn, pair_layouts, sequences,  # noqa: F401
                    split, split_sequence, vocab_from_config)

DATASETS = ("mnist-v2",)
N_PANEL = 9            # the deliverable: 3x3 pairs per panel, three panels:
PANELS = ("img_conditioned", "text_conditioned", "unconditional")


# ------------------------------------------------------------------------------------------------ the question
FIELDS = (
    q4.TOKENIZER_FIELD,
    *transformer_fields(4, epochs=(30, 500), batch=(128, 4096), warmup=1000, lr_min=1e-6,
                        epochs_help="passes over the training pairs",
                        batch_help="sequences of 58 tokens per minibatch"),
    Field("data_fraction", 1.0, 0.001, 1.0, label="data fraction", help="share of the training pairs used"),
    test_sample_field("test pairs"),
    Field("samples_per_epoch", 9, 0, 9, label="previews per epoch",
          help="after every epoch: captions for this many test images and images for as many test captions"),
    q4.TEMPERATURE_FIELD,
)
PRESETS = {  # the first is the default on a CPU, homework on a GPU
    "quick": {"d_model": 64, "heads": 4, "layers": 2, "epochs": 3, "batch_size": 64, "lr": 2e-3,
              "warmup_steps": 100, "data_fraction": 0.5, "test_sample": 1000},
    "homework": {},  # the course's Q4b transformer: d_model 128, 4 heads, 4 layers, 30 epochs, lr 1e-3
}


def transformer_config(hp: dict, vocab: Vocab) -> dict:
    return {"question": "q6", **vocab.config(), "vocab_size": vocab.size, "block_size": SEQ_LEN,
            "d_model": int(hp["d_model"]), "n_heads": int(hp["heads"]), "n_layers": int(hp["layers"])}


def load_model(source: str, device: str = "cpu", runs_root=None):
    """(Transformer, Vocab, config) of a q6 source; config["tokenizer"] names the tokenizer it was trained with."""
    model, config = sources.load(source, device, runs_root, questions="q6")
    return model, vocab_from_config(config), config


def panel(codes, captions, tokenizer) -> tuple[np.ndarray, list[str]]:
    return q4.to_images(tokenizer.decode(np.asarray(codes).reshape(-1, 7, 7))), list(captions)


class MultimodalQ(Question):
    key, title = "q6", "Text + image transformer"
    source_fields = ("tokenizer",)
    datasets = DATASETS
    fields = FIELDS
    presets = PRESETS
    unit = "nats/token"
    students = {"mnist-v2": (2.45, 3.07)}  # on the course's data (spec.md)
    heading = "Question 6: Causal Transformer — Multimodal — (a) Text and Image Generation"
    numbered_files = False
    quick_seconds = {None: 137}

    memory_fields = ("batch_size", "d_model", "batch size, d_model or layers")
    architecture = ("tokenizer", "d_model", "heads", "layers")
    # from a trained model: a tenth of the homework peak, a short warm-up, one pass over 5% of the pairs (an epoch
    # of the homework net takes ~10 min on 2 CPU cores)
    finetune = {"epochs": 1, "lr": 1e-4, "warmup_steps": 20, "data_fraction": 0.05, "samples_per_epoch": 3,
                "test_sample": 500}

    def check(self, hp, dataset):
        return {**super().check(hp, dataset), **q4.token_model_check(self, hp, dataset)}

    def memory(self, hp, dataset):
        words = len(CAPTION_WORDS)
        return q4.token_model_memory(hp, dataset, SEQ_LEN - 1, words + 3)   # + <end of text>, <end of image>, <bos>

    def load_data(self, dataset, hp, ctx) -> Data:
        """Images with captions ((images, captions) as train and test) and the tokenizer hp["tokenizer"] names."""
        from ... import data

        xtr, xte, ctr, cte = data.load(dataset)
        found = q4.find_tokenizer(hp["tokenizer"], dataset, ctx.runs_root)
        tok = q4.load_tokenizer(found.source, ctx.device, runs_root=ctx.runs_root)
        ctx.emit("log", msg=f"tokenizer: {found.label} ({tok.n_embeddings} codes)")
        return Data((xtr, ctr), (xte, cte), name=dataset, tokenizer=tok, source=found.source, sha256=found.sha256)

    def train(self, data: Data, hp: dict, *, seed: int = 0, device: str = "cpu",
              ctx: RunContext | None = None) -> Trained:
        """data.train / data.test: (images (N,28,28,3) in 0..3, captions); data.tokenizer: any object with
        n_embeddings, quantize and decode. Token arrays are cached in the run folder when the context has one."""
        hp = self.hparams(hp)
        ctx = ctx or RunContext()
        tok = data.tokenizer
        (xtr, ctr), (xte, cte) = data.train, data.test
        if len(xtr) != len(ctr) or len(xte) != len(cte):
            raise ValueError("every image needs its caption: the image and caption counts differ")
        keep = subset_indices(len(xtr), hp["data_fraction"], seed)
        everything = q4.check_images(xtr, "training images")
        xtr, ctr = everything[keep], [ctr[i] for i in keep]
        xte = q4.check_images(xte, "test images")
        vocab = Vocab.from_captions(ctr, tok.n_embeddings, CAPTION_WORDS)   # the language's words, all of them
        codes = q4.tokenize_parts(tok, {"train": (everything, keep), "test": xte}, ctx, shipped_sha256=data.sha256)
        words_tr = np.array([vocab.encode(c) for c in ctr])
        words_te = np.array([vocab.encode(c) for c in cte])  # a test word unseen in training: UnknownWords
        info = {"n_embeddings": tok.n_embeddings, "n_words": len(vocab.words), "vocab_size": vocab.size,
                "ln_vocab": math.log(vocab.size), "train_pairs": len(xtr), "predicted_tokens": SEQ_LEN - 1}
        ctx.emit("meta", **info)

        torch.manual_seed(seed)
        config = {**transformer_config(hp, vocab), "dataset": data.name, "tokenizer": data.source,
                  "tokenizer_sha256": data.sha256}
        model = Transformer.from_config(config)
        n_prev = int(hp["samples_per_epoch"])
        prev_imgs, prev_caps, prev_codes = xte[:n_prev], list(cte[:n_prev]), codes["test"][:n_prev]

        def on_epoch_end(epoch, m):
            if n_prev and ctx.keeps:
                check = stop_check(ctx, f"drawing the epoch {epoch} previews")
                said = captions_for(m, vocab, prev_codes, seed + epoch, hp["temperature"], check)
                ctx.save_images(epoch_name("captions", epoch), prev_imgs, ncols=3, levels=4, epoch=epoch, captions=said)
                drawn, _ = panel(codes_for(m, vocab, prev_caps, seed + epoch, hp["temperature"], check), prev_caps, tok)
                ctx.save_images(epoch_name("images", epoch), drawn, ncols=3, levels=4, epoch=epoch, captions=prev_caps)

        cfg = TrainConfig(epochs=hp["epochs"], batch_size=hp["batch_size"], lr=hp["lr"],
                          warmup_steps=hp["warmup_steps"], schedule="cosine", seed=seed, device=device,
                          test_sample=hp["test_sample"])
        res = fit(model, loss_fn, pair_layouts(vocab, codes["train"], words_tr),
                  pair_layouts(vocab, codes["test"], words_te), cfg, ctx, on_epoch_end)
        return Trained(model.eval(), config, res, {**info, "vocab": vocab, "test_codes": codes["test"]})

    def panels(self, trained: Trained, tokenizer, test_images, test_captions, image_prompts=None,
               text_prompts=None, seed: int = 0, temperature: float = 1.0, step_callback=None) -> dict:
        """The three 3x3 deliverables: {name: (images (9,28,28,3) uint8, captions)} for "img_conditioned" (captions
        for the image prompts, default the first nine test images), "text_conditioned" (images for the text
        prompts, default the first nine test captions) and "unconditional"."""
        model, vocab = trained.model, trained.extras["vocab"]
        imgs = q4.check_images(test_images[:N_PANEL] if image_prompts is None else image_prompts, "image prompts")
        texts = list(test_captions[:N_PANEL] if text_prompts is None else text_prompts)
        said = captions_for(model, vocab, q4.tokenize(tokenizer, imgs), seed, temperature, step_callback)
        drawn = codes_for(model, vocab, texts, seed, temperature, step_callback)
        ucodes, ucaps, _ = unconditional(model, vocab, N_PANEL, seed, temperature, step_callback)
        return dict(zip(PANELS, ((imgs, said), panel(drawn, texts, tokenizer), panel(ucodes, ucaps, tokenizer))))

    def finish(self, trained, data, hp, spec, ctx) -> dict:
        ctx.progress(0.0, "drawing the three 3x3 panels")
        (xte, cte), tok = data.test, data.tokenizer
        check = stop_check(ctx, "drawing the final samples")
        for name, (imgs, caps) in self.panels(trained, tok, xte, cte, seed=spec.seed, temperature=hp["temperature"],
                                              step_callback=check).items():
            ctx.save_images(f"samples_{name}", imgs, ncols=3, levels=4, final=True, captions=caps)
        classifier, entry = load_digit_classifier(ctx.device)
        if classifier is None:
            ctx.emit("log", msg=f"no digit classifier shipped ({DIGIT_CLASSIFIER}): images_match not measured")
        agree = agreement(trained.model, trained.extras["vocab"], tok, xte, cte, classifier, seed=spec.seed,
                          temperature=hp["temperature"], progress=lambda f, m: ctx.progress(0.2 + 0.8 * f, m),
                          step_callback=stop_check(ctx, "measuring the agreement"))
        metrics = {**agree, "start_loss": trained.result.test_losses[0], "temperature": hp["temperature"]}
        if entry is not None:
            metrics["digit_classifier_accuracy"] = entry["metrics"]["accuracy"]
        info = {k: v for k, v in trained.extras.items() if k not in ("vocab", "test_codes")}
        return {**self.summary(trained), "tokenizer": data.source.replace(":", " ", 1), **info, **agree,
                "metrics": metrics}

    def rebuild(self, config):
        return Transformer.from_config(config)

    def test_loss(self, model, config, test, loaded, device, batch_size):
        from ...train import evaluate

        tok = q4.load_tokenizer(config["tokenizer"], device)
        vocab = vocab_from_config(config)
        both = pair_layouts(vocab, q4.tokenize(tok, test), [vocab.encode(c) for c in loaded[3]])
        return evaluate(model, loss_fn, both, batch_size, device)

    # -- the write-up: the train plot and the three 3x3 panels of pairs
    def figure_names(self, dataset):
        p = self.prefix(dataset)
        return [f"{p}_train_plot.png"] + [f"{p}_samples_{k}.png" for k in PANELS]

    def _panel_title(self, dataset, panel):
        return self.figure_title(dataset, f"Samples ({panel.replace('_', ' ')})")

    def run_figures(self, run):
        from ... import figures

        names = self.figure_names(run.dataset)
        out = {names[0]: super().run_figures(run)[names[0]]}
        for name, panel in zip(names[1:], PANELS):
            out[name] = figures.Figure(lambda p, panel=panel: figures.pairs_figure(
                p, np.load(run.dir / f"samples_{panel}.npy"), run.artifacts()[f"samples_{panel}"]["captions"],
                self._panel_title(run.dataset, panel)), "no final samples saved")
        return out

    def pretrained_figures(self, model, config, entry, *, seed=0, device="cpu", extra=None):
        from ... import data, figures

        ds = entry["dataset"]
        tok = q4.load_tokenizer(config["tokenizer"], device)
        _, test, _, test_caps = data.load(ds)
        trained = Trained(model, config, None, {"vocab": vocab_from_config(config)})
        panels = self.panels(trained, tok, test, test_caps, seed=seed)
        return {name: (lambda p, panel=panel, imgs=imgs, caps=caps: figures.pairs_figure(
                    p, imgs, caps, self._panel_title(ds, panel)))
                for name, (panel, (imgs, caps)) in zip(self.figure_names(ds)[1:], panels.items())}


MULTIMODAL = MultimodalQ()

"""Q6's agreement numbers of one model at several temperatures, and what real images score through its tokenizer.

    python -m bench.studies.q6_agreement [SOURCE] [--temperatures 1,0.5,0] [--n 1000]

SOURCE: a Q6 model ("pretrained:q6-mnist-v2", the default, or "run:ID"). For each temperature: the share of
caption words right (the image's own caption's words, for captions drawn for the first n test images) and the share
of images whose digit and both colours match their caption (images drawn for the first n test captions) — core.questions.q6.agreement,
the numbers the page and the manifest show. Then, for scale, the tokenizer's own reconstructions of those n test
images, scored the same way: what real digits score through this tokenizer, classifier and colour reader (drawn
images can score higher, being cleaner, more typical digits). Prints one JSON object: {"by_temperature": {...},
"images_match_of_reconstructions": ...}, the manifest's layout.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

from core import data
from core.questions import q4, q6


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("source", nargs="?", default="pretrained:q6-mnist-v2")
    ap.add_argument("--temperatures", default="1,0.5,0")
    ap.add_argument("--n", type=int, default=q6.N_AGREE)
    a = ap.parse_args(argv)
    model, vocab, config = q6.load_model(a.source)
    tok = q4.load_tokenizer(config["tokenizer"])
    classifier, _ = q6.load_digit_classifier()
    if classifier is None:
        ap.error(f"the digit classifier {q6.DIGIT_CLASSIFIER} is not shipped: images cannot be scored")
    _, test, _, caps = data.load(config.get("dataset") or "mnist-v2")
    out = {"by_temperature": {}}
    for t in (float(v) for v in a.temperatures.split(",")):
        t0 = time.time()
        m = q6.agreement(model, vocab, tok, test, caps, classifier, n=a.n, temperature=t)
        out["by_temperature"][f"{t:g}"] = {**{k: round(m[k], 4) for k in ("caption_words_true", "captions_all_true",
                                                                          "images_match")}, "by_word": m["by_word"]}
        print(f"temperature {t:g}: {out['by_temperature'][f'{t:g}']} ({time.time() - t0:.0f} s)", file=sys.stderr)
    shown = q4.check_images(test[:a.n])
    recon = q4.to_images(tok.decode(q4.tokenize(tok, shown).reshape(-1, 7, 7)))
    out["images_match_of_reconstructions"] = round(float(q6.images_match(recon, caps[:a.n], classifier).mean()), 4)
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

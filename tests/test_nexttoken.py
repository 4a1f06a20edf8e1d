"""The step-by-step view shows the cached sampler's own distribution: at every step of a real sampling run, the
Stepper's probabilities equal softmax(the logits the sampler drew from / temperature)."""
import pytest
import torch

from core.models.transformer import Transformer, TransformerConfig, forbid, sample
from core.nexttoken import Stepper


def model(seed=0):
    torch.manual_seed(seed)
    m = Transformer(TransformerConfig(vocab_size=12, block_size=16, d_model=16, n_heads=2, n_layers=2)).eval()
    with torch.no_grad():
        m.head.weight.mul_(40)   # a peaked model, so top-k and temperature matter
    return m


@pytest.mark.parametrize("temperature,top_k", [(1.0, None), (0.7, 5), (1.6, 3)])
def test_stepper_probabilities_are_the_samplers(temperature, top_k):
    m, bos = model(), 11
    seen = []
    no_bos = forbid(bos)

    def hook(step, tokens, logits):  # the sampler's final logits at each step, recorded
        out = no_bos(step, tokens, logits)
        seen.append(out[0].clone())
        return out

    toks = sample(m, 1, 10, prefix=[bos, 3], generator=torch.Generator().manual_seed(1), temperature=temperature,
                  top_k=top_k, logits_hook=hook)[0].tolist()
    st = Stepper(m, [bos, 3], logits_hook=no_bos)
    for step, tok in enumerate(toks[2:]):
        want = torch.softmax(seen[step] / temperature, -1)
        assert torch.allclose(st.probs(temperature, top_k), want, atol=1e-5), step
        assert st.probs(temperature, top_k)[bos] == 0
        st.push(tok)
    assert st.tokens == toks


def test_choice_is_a_draw_and_greedy_at_zero():
    m, bos = model(1), 11
    st = Stepper(m, [bos], logits_hook=forbid(bos))
    assert st.choice(0.0) == int(st.probs(1.0).argmax())
    assert st.choice(1.0, seed=5) == st.choice(1.0, seed=5)          # fixed noise per (seed, step)
    picks = {Stepper(m, [bos], logits_hook=forbid(bos)).choice(1.5, seed=s) for s in range(40)}
    assert len(picks) > 1 and bos not in picks                        # a draw, never a forbidden token
    with pytest.raises(ValueError, match="not allowed"):
        st.push(bos)
    for _ in range(15):
        st.push(st.choice(1.0))
    assert st.full
    with pytest.raises(ValueError, match="full"):
        st.push(0)


def test_q3_page_draws_pixels_one_step_at_a_time(runs_dir):
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    from core import checkpoints

    if not checkpoints.find(name="q3a-shapes"):
        pytest.skip("no q3a-shapes shipped")
    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("pages/q3_transformer.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(i.caption.startswith("0 of 400 pixels drawn") for e in at.get("image") for i in e.proto.imgs)
    next(b for b in at.button if b.label == "Draw 10").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    captions = [i.caption for e in at.get("image") for i in e.proto.imgs]
    assert any(c.startswith("10 of 400 pixels drawn") for c in captions)
    assert any(c.value.startswith("Step 11: the") for c in at.caption)

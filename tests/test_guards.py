"""Guards for a classroom on one server: shared models sampled by many sessions at once."""
import threading

import pytest
import torch

from core import sources
from core.models import pixelcnn, transformer


def together(fn, k: int = 3) -> list:
    """fn() in k threads that start at the same moment (a barrier); -> their k results (re-raises a failure)."""
    barrier, out, errors = threading.Barrier(k), [None] * k, []

    def work(i):
        barrier.wait()
        try:
            out[i] = fn()
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(k)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return out


# ------------------------------------------------------------------------------------------- shared models
@pytest.fixture(scope="module")
def shapes_pixelcnn():
    return sources.load("pretrained:q2a-shapes")   # (model in eval mode, config), as the server caches it


def test_one_pixelcnn_sampled_by_many_threads_at_once(shapes_pixelcnn):
    model, config = shapes_pixelcnn
    H, W, _ = config["image_shape"]

    def draw(prefix=None):
        return pixelcnn.sample(model, 4, (H, W), torch.Generator().manual_seed(7), prefix=prefix)

    ref = draw()
    for got in together(draw):
        assert torch.equal(got, ref)
    prefix = ref[:, :H // 2].flip(0).contiguous()    # completions of other top halves
    ref = draw(prefix)
    for got in together(lambda: draw(prefix)):
        assert torch.equal(got, ref)
    assert not model.training   # a served model stays in eval mode


def test_sampling_restores_training_mode():
    torch.manual_seed(0)
    model = pixelcnn.PixelCNN(filters=4, n_layers=1, kernel_size=3).train()
    pixelcnn.sample(model, 1, (3, 3))
    assert model.training and all(m.training for m in model.modules())


def test_one_transformer_sampled_by_many_threads_at_once():
    model, config = sources.load("pretrained:q3a-shapes")

    def draw():
        return transformer.sample(model, 2, 60, prefix=[config["bos"]], generator=torch.Generator().manual_seed(3),
                                  logits_hook=transformer.forbid(config["bos"]))

    ref = draw()
    for got in together(draw):
        assert torch.equal(got, ref)
    assert not model.training

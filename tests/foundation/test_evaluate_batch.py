"""Evaluation does not depend on the batch it runs in (oefsmc/core/evaluate.py).

The CPU pixel budget (128 CIFAR images a batch) was lowered from 1000 images for speed without a change of
key; that is sound only if a prediction is the same whatever the batch, which these tests check on the
machine that runs them.
"""
import torch

from oefsmc.core import evaluate
from oefsmc.models import build_model


def _model_and_images():
    torch.manual_seed(0)
    model = build_model("resnet20", 10, 3).eval()
    for m in model.modules():  # non-trivial running statistics, as after training
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 2.0)
    return model, torch.randn(300, 3, 32, 32)


def test_fp32_logits_are_bit_identical_across_cpu_batches():
    model, x = _model_and_images()
    with torch.inference_mode():
        whole = model(x)
        for batch in (128, 64, 7):
            assert torch.equal(torch.cat([model(x[i:i + batch]) for i in range(0, len(x), batch)]), whole)


def test_predictions_do_not_depend_on_the_requested_batch():
    model, x = _model_and_images()
    with torch.inference_mode():
        whole = model(x).argmax(1)  # one forward over all 300 images: the reference
    assert evaluate.device_batch_size(1000, evaluate.image_pixels(x), "cpu") == 128  # the budget acts here
    for batch in (1000, 128, 50, 1):
        assert torch.equal(evaluate.predict(model, x, batch_size=batch, precision="fp32"), whole)

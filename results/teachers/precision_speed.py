"""Training and evaluation throughput of ResNet-32 in fp32 and bf16 autocast on this machine's CPU, one thread.

Run from the repository root: ``.venv/bin/python results/teachers/precision_speed.py`` (a few minutes; keep the
other cores idle).  Prints one line per row and writes ``results/teachers/precision_speed_<capability>.json``.
Where the CPU has no native bf16 (``torch.backends.cpu.get_cpu_capability()`` below AVX512, no AMX) autocast
emulates it, and bf16 is several times *slower* than fp32 (reproduction notes, section 9).
"""
import json
import time

import torch
import torch.nn.functional as F

from oefsmc.core.evaluate import cpu_has_bf16
from oefsmc.models import build_model

torch.set_num_threads(1)
rows = {}
for precision in ("fp32", "bf16"):
    memory = torch.channels_last if precision == "bf16" else torch.contiguous_format
    bf16 = precision == "bf16"
    torch.manual_seed(0)
    model = build_model("resnet32", 100, 3).to(memory_format=memory)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x = torch.randn(128, 3, 32, 32).contiguous(memory_format=memory)
    y = torch.randint(0, 100, (128,))
    for step in range(4):  # the first step warms up
        if step == 1:
            t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    train = 3 * 128 / (time.perf_counter() - t0)
    model.eval()
    xe = torch.randn(1000, 3, 32, 32).contiguous(memory_format=memory)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        model(xe[:100])
        t0 = time.perf_counter()
        model(xe)
        evaluate = 1000 / (time.perf_counter() - t0)
    rows[precision] = {"train_img_per_s": round(train, 1), "eval_img_per_s": round(evaluate, 1),
                       "train_epoch_min_50k": round(50000 / train / 60, 1), "eval_10k_s": round(10000 / evaluate, 1)}
    print(precision, rows[precision], flush=True)
capability = torch.backends.cpu.get_cpu_capability()
out = {"cpu_capability": capability, "native_bf16": cpu_has_bf16(), "threads": 1, "torch": torch.__version__,
       "rows": rows}
with open(f"results/teachers/precision_speed_{capability.lower()}.json", "w") as f:
    json.dump(out, f, indent=1)
    f.write("\n")

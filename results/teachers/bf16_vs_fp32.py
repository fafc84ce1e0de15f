import json, time, torch
from oefsmc.core.evaluate import evaluate
from oefsmc.data import load_split
from oefsmc.models import build_model
from oefsmc.models.teacher import RECIPES, Normalizer
from oefsmc.models.teacher_training import apply_recipe_overrides, train_teacher
torch.set_num_threads(1)
d = load_split("cifar100", "../shared/data", "train"); te = load_split("cifar100", "../shared/data", "test")
r = apply_recipe_overrides(RECIPES.get("akamaster-resnet"), {"teacher.epochs": "3", "teacher.milestones": "2"})
out = {}
for prec in ("bf16", "fp32"):
    torch.manual_seed(0); m = build_model("resnet32", 100, 3)
    s = train_teacher(m, d.images, d.labels, r, 0, torch.device("cpu"), precision=prec)
    acc = evaluate(m, te.images, te.labels, 100, 1000, Normalizer("cifar", "cpu"))
    out[prec] = {"top1": acc["top1"], "img_per_s": [h["img_per_s"] for h in s["history"]], "loss": s["final_loss"]}
    print(prec, out[prec], flush=True)
json.dump({"recipe": r.name, "results": out}, open("/tmp/jobs/bf16_vs_fp32.json", "w"), indent=1)

"""An experiment, not a product path: would fine-tuning demo-v2's image encoder on the
clinicians' ratings of the review split help the one-threshold rule and CLIP top-1 on val?

The learning loop trains the LM only; every error left in the benchmark is a perception error
(docs/training.md). This measures how much the ratings could teach the encoder, on the
workspaces ``medreview benchmark --dir DIR`` leaves (``DIR/seed-N``, never modified).

Per seed: copy models/demo-v2/base/clip, then
  orig    : the copy as is
  control : continue training on the train split only (train_clip's loss and loop style)
  review  : same budget, train split + rated review cases (labels from the ratings only)
Checkpoint kept: lowest val loss (cross-entropy of the shown finding; as train_clip).
Reports val top-1, the threshold rule's val accuracy (app/cli/benchmark.threshold_rule on the
new weights), and with --test the rule's test accuracy (threshold from val).

Review labels come from the ratings only (the chosen answer, the rationale, the verdict word;
never a case's ground truth, which is read only to count how many labels were wrong). Each
trained variant is repeated ``--reps`` times with different training seeds, to show the noise.

    HF_HUB_OFFLINE=1 .venv/bin/python -m benchmarks.clip_from_ratings --dir DIR --out OUT \
        [--seeds 0,1,2] [--reps 2] [--test]

About 6 minutes a seed on this 2-core CPU (one thread). ``--test`` adds the rule's test accuracy
(threshold from val): look at it once, at the end.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import re
import shutil
import sqlite3
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import torch

from core.clinical.knowledge import default_knowledge
from core.demo.train_models import _clip_probs, _image_batch, _nll, _shown_finding

KB = default_knowledge()
FINDINGS = [f for m in KB.findings.values() for f in m]


def load_cases(root: Path) -> dict[str, list]:
    from app.convert import case_from_record
    from feedback_db import open_store

    with open_store(f"sqlite:///{root / 'medreview.db'}") as store:
        return {
            s: [
                replace(case_from_record(r), image=str(root / r.image))
                for r in store.get_cases(store.query_case_ids(split=s, order="id"))
            ]
            for s in ("train", "review", "val", "test")
        }


# ---------------------------------------------------------------- labels from the ratings only
NOT_SEEN = re.compile(r"^(?P<x>.+?) is not seen on this image, which shows (?P<y>.+?)(;|$)")


def rating_label(r: sqlite3.Row, case) -> tuple[tuple[str, str] | None, str]:
    """(('pos'|'neg', finding name), source) from one rating; reads the case's stated finding
    and treatment (what the clinician saw), never its error_type/meta."""
    x = KB.finding(case.modality, case.finding)
    rat = (r["rationale"] or "").strip()
    m = NOT_SEEN.match(rat)
    if m:
        y = KB.finding(case.modality, m.group("y").strip())
        if y is not None:
            return ("pos", y.name), "rationale: not seen, shows Y"
        return ("neg", x.name), "rationale: not seen"
    if rat.startswith("the image does not show"):
        return ("neg", x.name), "rationale: does not show"
    if rat.startswith("the image shows"):
        return ("pos", x.name), "rationale: shows"
    pref = r["preference"]
    chosen = {"a": r["answer_a"], "b": r["answer_b"]}.get(pref)
    if pref == "tie":
        kinds = {
            "neg" if a.startswith("ERROR - the image does not show") else "pos"
            for a in (r["answer_a"], r["answer_b"])
        }
        if len(kinds) == 1:  # rated alike and saying the same about the image
            chosen = r["answer_a"]
    if chosen:
        word, _, reason = chosen.partition(" - ")
        if reason.startswith("the image does not show") and word == "ERROR":
            return ("neg", x.name), f"chosen({pref}) ERROR image"
        return ("pos", x.name), f"chosen({pref}) {word}"
    # both_wrong (or an uneven tie) without a rationale: only the true verdict word is known.
    if r["true_label"] == "CORRECT":
        return ("pos", x.name), "verdict CORRECT, no reason"
    if KB.is_acceptable(case.modality, case.finding, case.treatment) is True:
        # The treatment fits the stated finding, so the error the clinician saw is the image.
        return ("neg", x.name), "verdict ERROR, no reason, treatment fits -> image"
    return None, "verdict ERROR, no reason, treatment does not fit"


def review_labels(root: Path, review: list) -> tuple[list[tuple], dict]:
    by_id = {c.case_id: c for c in review}
    db = sqlite3.connect(root / "medreview.db")
    db.row_factory = sqlite3.Row
    rows = db.execute("select * from ratings where retracted = 0 order by id").fetchall()
    superseded = {r["supersedes_id"] for r in rows if r["supersedes_id"] is not None}
    undone = {r["undo_of"] for r in rows if r["undo_of"] is not None}
    per_case: dict[str, list] = {}
    sources = Counter()
    for r in rows:
        if r["id"] in superseded or r["id"] in undone or r["undo_of"] is not None:
            continue
        case = by_id.get(r["case_id"])
        if case is None:
            sources["not a review case"] += 1
            continue
        lab, src = rating_label(r, case)
        sources[src] += 1
        if lab is not None:
            per_case.setdefault(case.case_id, []).append(lab)
    labels, conflicts = [], 0
    for cid, labs in per_case.items():
        (top, n), *rest = Counter(labs).most_common() + [((None, None), 0)]
        if rest and rest[0][1] == n:
            conflicts += 1
            continue
        labels.append((by_id[cid], top[0], KB.finding(by_id[cid].modality, top[1])))
    # Scored against ground truth (reporting only; training never reads it).
    wrong = Counter()
    for c, kind, f in labels:
        shown = _shown_finding(c, KB)
        ok = (shown == f) if kind == "pos" else (shown != f)
        if not ok:
            wrong[f"{kind} (truth {c.error_type})"] += 1
    stats = {
        "ratings": len(rows),
        "rated_cases": len({r["case_id"] for r in rows}),
        "review_cases": len(review),
        "sources": dict(sources),
        "cases_with_label": len(labels),
        "conflicting_cases_dropped": conflicts,
        "pos": sum(k == "pos" for _, k, _ in labels),
        "neg": sum(k == "neg" for _, k, _ in labels),
        "pos_other_than_stated": sum(
            k == "pos" and f.name != KB.finding(c.modality, c.finding).name for c, k, f in labels
        ),
        "wrong_vs_truth": sum(wrong.values()),
        "wrong_detail": dict(wrong),
    }
    return labels, stats


# ---------------------------------------------------------------- training (train_clip's style)
def continue_clip(
    folder: Path, train: list, extra: list[tuple], val: list, args, seed: int
) -> dict:
    """Continue fitting the CLIP in ``folder``: train_clip's cross-entropy on the train split's
    shown findings, plus for ``extra`` (case, 'pos'|'neg', finding) cross-entropy (pos) or
    -log(1 - p(finding)) (neg). The checkpoint with the lowest val loss is saved."""
    import open_clip

    from core.demo.clip import save_clip_weights

    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{folder}")
    tokenizer = open_clip.get_tokenizer(f"local-dir:{folder}")
    text_tokens = tokenizer([f.clip_text for f in FINDINGS])
    items = [(c, "pos", f) for c, f in ((c, _shown_finding(c, KB)) for c in train) if f is not None]
    items += list(extra)
    images = _image_batch(preprocess, [c for c, _, _ in items])
    target = torch.tensor([FINDINGS.index(f) for _, _, f in items])
    neg = torch.tensor([k == "neg" for _, k, _ in items])
    same = torch.tensor([[f.modality == c.modality for f in FINDINGS] for c, _, _ in items])
    val_u = [(c, _shown_finding(c, KB)) for c in val]
    val_images = _image_batch(preprocess, [c for c, _ in val_u])
    val_target = torch.tensor([FINDINGS.index(f) for _, f in val_u])
    val_same = torch.tensor([[f.modality == c.modality for f in FINDINGS] for c, _ in val_u])

    def val_check() -> tuple[float, float]:
        vp = _clip_probs(model, val_images, text_tokens, val_same)
        return _nll(vp, val_target), float((vp.argmax(-1) == val_target).float().mean())

    v0 = val_check()
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, s / args.steps)))
    )
    gen = torch.Generator().manual_seed(seed)
    model.train()
    best = None
    checks = []
    for step in range(1, args.steps + 1):
        idx = torch.randint(len(items), (min(args.batch, len(items)),), generator=gen)
        batch = images[idx]
        flip = torch.rand(len(idx), generator=gen) < 0.5
        batch = torch.where(flip[:, None, None, None], batch.flip(-1), batch)
        img = model.encode_image(batch, normalize=True)
        txt = model.encode_text(text_tokens, normalize=True)
        logits = (model.logit_scale.exp() * img @ txt.T).masked_fill(~same[idx], float("-inf"))
        t = target[idx]
        lse = logits.logsumexp(-1)
        logp_t = logits.gather(1, t[:, None])[:, 0] - lse
        others = logits.scatter(1, t[:, None], float("-inf")).logsumexp(-1) - lse  # log(1 - p_t)
        per = torch.where(neg[idx], -others, -logp_t)
        loss = per.mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, 4.6052)
        if step % args.eval_every == 0 or step == args.steps:
            v_loss, v_acc = val_check()
            checks.append([step, round(float(loss.detach()), 4), round(v_loss, 4), round(v_acc, 4)])
            if best is None or v_loss < best[0]:
                best = (v_loss, step, v_acc, copy.deepcopy(model.state_dict()))
    model.load_state_dict(best[3])
    save_clip_weights(model.eval(), folder)
    return {
        "items": len(items),
        "neg_items": int(neg.sum()),
        "start_val_loss": round(v0[0], 4),
        "best_step": best[1],
        "val_loss": round(best[0], 4),
        "checks": checks,
    }


# ---------------------------------------------------------------- evaluation
def evaluate_clip(clip_dir: Path, lm_dir: Path, root: Path, val: list, test: list | None) -> dict:
    import core.models.registry as reg
    from app.cli.benchmark import threshold_rule
    from core.models.backends.clip_llm import ClipLLMBackend, ClipLLMConfig
    from core.models.clip_scorer import ClipScorer

    scorer = ClipScorer(str(clip_dir))
    from core.models.backends._policy import load_pil

    images = [load_pil(Path(c.image)) for c in val]
    scores = scorer.score(images, [c.modality for c in val])
    top1 = sum(s[0][0] == _shown_finding(c, KB).name for c, s in zip(val, scores, strict=True))
    # threshold_rule as is, with Registry.load_backend("demo-v2") giving these weights.
    orig = reg.Registry.load_backend

    def load_backend(self, version, device="auto", image_root=None):
        return ClipLLMBackend(
            ClipLLMConfig(clip_model=str(clip_dir), lm_model=str(lm_dir), device="cpu")
        )

    reg.Registry.load_backend = load_backend
    try:
        rule = threshold_rule(root, val, test if test else val[:1], "cpu")
    finally:
        reg.Registry.load_backend = orig
    out = {
        "val_top1": round(top1 / len(val), 4),
        "threshold": rule["threshold"],
        "rule_val": round(rule["val"], 4),
    }
    if test:
        out["rule_test"] = round(rule["test"], 4)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--dir", required=True, help="the folder `medreview benchmark --dir` filled")
    p.add_argument("--out", required=True, help="a scratch folder for the weights and results")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--eval-every", type=int, default=25)
    p.add_argument("--variants", default="orig,control,review")
    p.add_argument("--reps", type=int, default=2, help="training repeats (seeds) per variant")
    p.add_argument("--test", action="store_true", help="also the rule's test accuracy")
    args = p.parse_args()
    torch.set_num_threads(1)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = {"args": vars(args), "seeds": {}}
    for seed in [int(s) for s in args.seeds.split(",")]:
        t0 = time.monotonic()
        root = Path(args.dir) / f"seed-{seed}"
        cases = load_cases(root)
        labels, stats = review_labels(root, cases["review"])
        print(f"seed {seed}: labels {json.dumps(stats)}", flush=True)
        res = {"labels": stats, "variants": {}}
        src_clip = root / "models" / "demo-v2" / "base" / "clip"
        lm_dir = root / "models" / "demo-v2" / "base" / "lm"
        runs = [
            (v, r)
            for v in args.variants.split(",")
            for r in (range(args.reps) if v != "orig" else [0])
        ]
        for variant_name, rep in runs:
            variant = variant_name if variant_name == "orig" else f"{variant_name}#{rep}"
            tv = time.monotonic()
            folder = out_dir / f"seed-{seed}" / variant.replace("#", "-") / "clip"
            shutil.rmtree(folder, ignore_errors=True)
            shutil.copytree(src_clip, folder)
            fit = {}
            if variant_name != "orig":
                extra = labels if variant_name == "review" else []
                fit = continue_clip(
                    folder, cases["train"], extra, cases["val"], args, seed * 10 + rep
                )
            ev = evaluate_clip(
                folder, lm_dir, root, cases["val"], cases["test"] if args.test else None
            )
            res["variants"][variant] = {
                **ev,
                "fit": fit,
                "seconds": round(time.monotonic() - tv, 1),
            }
            print(f"seed {seed} {variant}: {json.dumps(res['variants'][variant])}", flush=True)
        res["seconds"] = round(time.monotonic() - t0, 1)
        results["seeds"][seed] = res
        (out_dir / "results.json").write_text(json.dumps(results, indent=1))
    print("\nseed variant  val_top1  rule_val (t)" + ("  rule_test" if args.test else ""))
    for seed, res in results["seeds"].items():
        for v, r in res["variants"].items():
            line = f"{seed:>4} {v:<8} {r['val_top1']:.3f}    {r['rule_val']:.3f} ({r['threshold']:.2f})"
            if args.test:
                line += f"  {r['rule_test']:.3f}"
            print(line)


if __name__ == "__main__":
    main()

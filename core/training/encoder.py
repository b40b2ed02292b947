"""The encoder stage: fine-tune a clip-llm version's image encoder on what clinicians judged.

Once the language model reads the encoder's call on the stated finding, the errors left are
perception errors (docs/training.md): the encoder gives a finding the image shows a low
probability, or one it does not show a high one. SFT and PPO train the language model only and
cannot reach them. The ratings can: each judgement says, case by case, whether the image shows
the stated finding (``image_label``):

- judged CORRECT: the image shows its stated finding;
- judged ERROR, with a treatment the knowledge table accepts for the stated finding: the error
  is in the image, which does not show the stated finding; where a clinician's own rationale
  names the one finding it shows instead, that one is the label;
- judged ERROR with a treatment that does not fit: the rating says nothing about the image (no
  label).

Only the clinicians' judgements and rationales are read (``TrainingData``), never a case's
ground truth. The loss is the encoder's own: cross-entropy over the modality's findings for a
finding shown, ``-log(1 - p)`` for one not shown. The val cases are labelled the same way from
their verdicts (the ground truth the safety gate uses, never a shown-finding field); the
checkpoint with the lowest val loss is kept only if it beats the encoder as it was, otherwise
the encoder stays exactly as it was. Then the stated call's threshold is chosen again on val
(``choose_stated_threshold``), since the probabilities moved.

The stage fine-tunes a local open_clip folder (``local-dir:`` layout, as the demo's and any
exported model's); a hub id is left alone, and the stage says so.
"""

from __future__ import annotations

import copy
import math
import shutil
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.cases.records import Case
from core.clinical.knowledge import KnowledgeTable, default_knowledge
from core.clinical.verdicts import Label
from core.runtime.progress import Progress
from core.training.data import TrainingData
from core.training.encoder_config import EncoderSettings

if TYPE_CHECKING:
    from core.training.stages import StageContext

#: Where the stage writes the new encoder inside the new version (its card's ``clip``).
ENCODER_DIR = "encoder"


@dataclass(frozen=True)
class ImageLabel:
    """What a judgement says about one case's image: it shows ``finding`` (``shown``) or it
    does not; ``source`` says which rule gave it (for the report)."""

    case: Case
    finding: str
    shown: bool
    source: str


def image_label(
    case: Case, true_label: str, rationales: Sequence[str], kb: KnowledgeTable
) -> ImageLabel | None:
    """The image label a true verdict (and the clinicians' rationales) gives ``case``, or None
    when it says nothing about the image (an unknown finding, or a treatment that does not fit
    the stated finding).

    Two heuristics, said plainly: an ERROR on a treatment the knowledge table accepts is read as
    an image error (a clinician who disagrees with the table itself gives a wrong "not shown"
    label), and a rationale "names" a finding when the finding's name appears in it, so "not a
    Pneumothorax" names Pneumothorax; only a rationale that names exactly one other finding is
    used. The val loss guard keeps labels this noisy from doing harm."""
    stated = kb.finding(case.modality, case.finding)
    if stated is None:
        return None
    if true_label == Label.CORRECT:
        return ImageLabel(case, stated.name, True, "judged CORRECT: the image shows it")
    if kb.is_acceptable(case.modality, stated.name, case.treatment) is not True:
        return None
    for text in rationales:
        named = [
            f.name
            for f in kb.findings_for(case.modality)
            if f.name != stated.name and f.name.lower() in text.lower()
        ]
        if len(named) == 1:
            return ImageLabel(case, named[0], True, "a rationale names the finding shown")
    return ImageLabel(case, stated.name, False, "judged ERROR, treatment fits: not shown")


def labels_from_judgements(
    data: TrainingData, kb: KnowledgeTable | None = None
) -> list[ImageLabel]:
    """The image label of every judged case that has one (``image_label``), from the
    clinicians' true verdicts and their own rationales only."""
    kb = kb or default_knowledge()
    rationales: dict[str, list[str]] = {}
    for case, text in data.gold:
        if (case.case_id, text) in data.rewritten:
            rationales.setdefault(case.case_id, []).append(text)
    out = []
    for case_id, judgement in sorted(data.judgements.items()):
        judged = data.cases.get(case_id)
        if judged is None:
            continue
        label = image_label(judged, judgement.true_label, rationales.get(case_id, []), kb)
        if label is not None:
            out.append(label)
    return out


def labels_from_verdicts(
    cases: Sequence[Case], kb: KnowledgeTable | None = None
) -> list[ImageLabel]:
    """The val cases' image labels, from their verdicts alone (``truth_label``, as the safety
    gate reads them): the same rule as for a judgement without a rationale."""
    kb = kb or default_knowledge()
    out = []
    for case in cases:
        truth = case.truth_label
        label = image_label(case, truth, [], kb) if truth else None
        if label is not None:
            out.append(label)
    return out


def augment(batch: Any, gen: Any, shift: float) -> Any:
    """Training augmentation for an image encoder: mirror half the images (lesions sit on either
    side), then move each by up to ``shift`` of its side in each direction, the border repeated
    (a few hundred images show a finding in few places; new images put it elsewhere)."""
    import torch

    flip = torch.rand(len(batch), generator=gen) < 0.5
    batch = torch.where(flip[:, None, None, None], batch.flip(-1), batch)
    side = batch.shape[-1]
    if batch.shape[-2] != side:  # open_clip's preprocessing always gives square images
        raise ValueError(f"augment expects square images, got {tuple(batch.shape[-2:])}")
    s = round(shift * side)
    if s <= 0 or not len(batch):
        return batch
    padded = torch.nn.functional.pad(batch, (s, s, s, s), mode="replicate")
    offsets = torch.randint(0, 2 * s + 1, (len(batch), 2), generator=gen).tolist()
    return torch.stack(
        [padded[i, :, dy : dy + side, dx : dx + side] for i, (dy, dx) in enumerate(offsets)]
    )


def label_loss(logits: Any, target: Any, shown: Any) -> Any:
    """Per image: ``-log p(target)`` where the target finding is shown, ``-log(1 - p(target))``
    where it is not; ``logits`` are over all findings, those of other modalities at -inf."""
    lse = logits.logsumexp(-1)
    log_p = logits.gather(1, target[:, None])[:, 0] - lse
    log_not = logits.scatter(1, target[:, None], float("-inf")).logsumexp(-1) - lse
    return -(log_p.where(shown, log_not))


@dataclass
class EncoderReport:
    """What the encoder stage did: its labels (by rule), the val loss before and at the kept
    step, whether the new encoder was kept, and the stated call's threshold before and after."""

    labels: int
    labels_by_source: dict[str, int]
    val_labels: int
    start_val_loss: float
    best_val_loss: float
    best_step: int
    steps: int
    kept: bool
    seconds: float
    threshold_before: float | None = None
    threshold_after: float | None = None
    threshold_val_accuracy: float | None = None
    history: list[list[float | None]] = field(default_factory=list)  # step, train, val loss

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        """One sentence for the progress line and the card."""
        change = (
            f"kept: val loss {self.start_val_loss:.3f} -> {self.best_val_loss:.3f} (step "
            f"{self.best_step})"
            if self.kept
            else f"not kept: no checkpoint beat the val loss it started from "
            f"({self.start_val_loss:.3f}; best {self.best_val_loss:.3f})"
        )
        return f"image encoder on {self.labels} labelled images, {change}"


class _Batches:
    """The labelled images as tensors: preprocessed images, target finding index, shown flag,
    and each row's mask of its modality's findings."""

    def __init__(self, labels: Sequence[ImageLabel], load: Any, preprocess: Any, names: list[str],
                 modalities: list[str]) -> None:  # fmt: skip
        import torch

        self.images = torch.stack([preprocess(load(lab.case)) for lab in labels])
        self.target = torch.tensor(
            [names.index(f"{lab.case.modality}\0{lab.finding}") for lab in labels]
        )
        self.shown = torch.tensor([lab.shown for lab in labels])
        self.same = torch.tensor([[m == lab.case.modality for m in modalities] for lab in labels])


def fit_encoder(
    model: Any,
    tokenizer: Any,
    preprocess: Any,
    load_image: Any,
    labels: Sequence[ImageLabel],
    val_labels: Sequence[ImageLabel],
    cfg: EncoderSettings,
    device: str = "cpu",
    knowledge: KnowledgeTable | None = None,
    progress: Progress | None = None,
    stage: str = "encoder",
) -> EncoderReport:
    """Fine-tune the open_clip ``model`` in place on ``labels``; keep the checkpoint with the
    lowest loss on ``val_labels`` if it beats the starting one, else restore the start.

    ``load_image(case)`` gives a case's PIL image. Both towers train (the finding texts are few
    and fixed); the logit scale stays within CLIP's bound. Returns the report; the model is left
    in eval mode.
    """
    import torch

    kb = knowledge or default_knowledge()
    t0 = time.perf_counter()
    findings = [(m, f) for m, fs in kb.findings.items() for f in fs]
    names = [f"{m}\0{f.name}" for m, f in findings]
    modalities = [m for m, _ in findings]
    text_tokens = tokenizer([f.clip_text for _, f in findings]).to(device)
    train = _Batches(labels, load_image, preprocess, names, modalities)
    val = _Batches(val_labels, load_image, preprocess, names, modalities)

    def logits_of(images: Any, same: Any) -> Any:
        img = model.encode_image(images.to(device), normalize=True)
        txt = model.encode_text(text_tokens, normalize=True)
        scale = model.logit_scale.exp().clamp(max=100.0)
        return (scale * img @ txt.T).float().masked_fill(~same.to(device), float("-inf"))

    def train_mode() -> None:
        model.train()
        if cfg.freeze_norm:
            for m in model.modules():
                if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                    m.eval()

    def val_loss() -> float:
        model.eval()
        with torch.no_grad():
            losses = [
                label_loss(
                    logits_of(val.images[i : i + 64], val.same[i : i + 64]),
                    val.target[i : i + 64].to(device),
                    val.shown[i : i + 64].to(device),
                )
                for i in range(0, len(val.target), 64)
            ]
        train_mode()
        return float(torch.cat(losses).mean())

    start = val_loss()
    best = (start, 0, copy.deepcopy(model.state_dict()))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, s / cfg.steps)))
    )
    gen = torch.Generator().manual_seed(cfg.seed)
    history: list[list[float | None]] = [[0, None, start]]
    train_mode()
    for step in range(1, cfg.steps + 1):
        if progress is not None:
            progress.check()
        idx = torch.randint(
            len(train.target), (min(cfg.batch_size, len(train.target)),), generator=gen
        )
        batch = augment(train.images[idx], gen, cfg.shift)
        loss = label_loss(
            logits_of(batch, train.same[idx]),
            train.target[idx].to(device),
            train.shown[idx].to(device),
        ).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100.0))
        if step % cfg.eval_every == 0 or step == cfg.steps:
            v = val_loss()
            history.append([step, float(loss.detach()), v])
            if v < best[0]:
                best = (v, step, copy.deepcopy(model.state_dict()))
        if progress is not None and (step % 10 == 0 or step == cfg.steps):
            progress.update(stage, step, cfg.steps, loss=float(loss.detach()))
    model.load_state_dict(best[2])
    model.zero_grad(set_to_none=True)
    model.eval()
    return EncoderReport(
        labels=len(labels),
        labels_by_source=dict(Counter(lab.source for lab in labels)),
        val_labels=len(val_labels),
        start_val_loss=start,
        best_val_loss=best[0],
        best_step=best[1],
        steps=cfg.steps,
        kept=best[1] > 0,
        seconds=time.perf_counter() - t0,
        history=history,
    )


def local_open_clip_folder(source: str) -> Path | None:
    """``source`` as a local open_clip folder (``local-dir:`` layout), or None (a hub id)."""
    from core.models.clip_scorer import OPEN_CLIP_CONFIG

    path = Path(source.removeprefix("local-dir:"))
    return path if (path / OPEN_CLIP_CONFIG).is_file() else None


def save_encoder(model: Any, source: Path, dest: Path) -> None:
    """Write ``model`` as an open_clip folder at ``dest``: ``source``'s config and tokenizer
    files, the new weights."""
    from core.models.clip_scorer import save_open_clip_weights
    from core.models.registry import PICKLE_SUFFIXES

    dest.mkdir(parents=True, exist_ok=True)
    for item in source.iterdir():
        weights = item.suffix.lower() in (*PICKLE_SUFFIXES, ".safetensors")
        if item.is_file() and not weights:
            shutil.copy2(item, dest / item.name)
    save_open_clip_weights(model, dest)


def run_encoder(ctx: StageContext) -> dict[str, Any] | None:
    """The retrain stage (``core.training.retrain_config.STAGES``): fit the policy's image
    encoder to the judgements, keep it only if its val loss is lower, re-choose the stated
    call's threshold on val, and make the new version load it (``ctx.base_models['clip']``).
    None, said on the progress line, when there is nothing to do: no image encoder (a vlm or a
    text-only version), a hub encoder, or fewer than ``min_labels`` labels."""
    from core.models.backends._policy import load_pil, resolve_image
    from core.models.clip_scorer import choose_stated_threshold, stated_probability

    policy, cfg = ctx.policy, ctx.cfg.encoder
    scorer = getattr(policy, "scorer", None)
    if scorer is None:
        ctx.announce("encoder", "skipped: this version has no separate image encoder to fit")
        return None
    folder = local_open_clip_folder(str(scorer.source))
    if folder is None:
        ctx.announce("encoder", f"skipped: the image encoder {scorer.source} is not a local folder")
        return None
    kb = policy.knowledge
    labels = labels_from_judgements(ctx.data, kb)
    val_labels = labels_from_verdicts(ctx.val, kb)
    if len(labels) < cfg.min_labels or not val_labels:
        ctx.announce(
            "encoder",
            f"skipped: {len(labels)} judged images say what they show, {cfg.min_labels} needed "
            f"(EncoderSettings.min_labels), and {len(val_labels)} val cases",
        )
        return None
    ctx.announce("encoder", f"{len(labels)} labelled images, {len(val_labels)} val cases")

    def load(case: Case) -> Any:
        return load_pil(resolve_image(case.image, policy.image_root))

    model = scorer.model
    dtype = next(model.parameters()).dtype
    model.float()
    report = fit_encoder(
        model, scorer.tokenizer, scorer.preprocess, load, labels, val_labels, cfg,
        device=scorer.choice.device, knowledge=kb, progress=ctx.progress,
    )  # fmt: skip
    if report.kept:  # saved as trained (fp32), before the cast back to the device's dtype
        save_encoder(model, folder, ctx.work / ENCODER_DIR)
        ctx.base_models["clip"] = ENCODER_DIR
    model.to(dtype=dtype).eval()
    scorer.clear_cache()
    policy.clear_image_cache()
    threshold = policy.config.stated_threshold
    report.threshold_before = threshold
    if report.kept and threshold is not None:
        val = [c for c in ctx.val if c.truth_label is not None]
        scores = policy.image_scores(val)
        probs = [
            stated_probability(s, f.name) if (f := kb.finding(c.modality, c.finding)) else 0.0
            for c, s in zip(val, scores, strict=True)
        ]
        rejected = [kb.is_acceptable(c.modality, c.finding, c.treatment) is False for c in val]
        t, acc = choose_stated_threshold(probs, rejected, [bool(c.is_error) for c in val])
        policy.config.stated_threshold = t
        ctx.settings["stated_threshold"] = t
        report.threshold_after, report.threshold_val_accuracy = t, acc
    if ctx.progress is not None:
        ctx.progress.update("encoder", report.steps, report.steps, message=report.line())
    return report.to_dict()

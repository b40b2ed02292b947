from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from core.cases.images import load_image
from core.cases.records import MODALITIES, SPLITS, Case
from core.clinical.knowledge import default_knowledge
from core.demo import KINDS, MANIFEST_NAME, DemoConfig, generate_demo, plan_scenarios
from core.demo.phantoms import VISUALS, render
from core.demo.scenarios import MIN_CASES_ALL_SPLITS, SPLIT_FRACTIONS
from core.manifests.reader import read_manifest
from core.runtime.progress import Canceled, Progress


def _plan(n: int, seed: int = 0):  # noqa: ANN202 - test helper
    return plan_scenarios(
        default_knowledge(), n, (0.5, 0.25, 0.25), SPLIT_FRACTIONS, np.random.default_rng(seed)
    )


def _files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_seed_same_bytes_other_seed_other_cases(tmp_path: Path) -> None:
    a = generate_demo(tmp_path / "a", seed=7, n_cases=24)
    b = generate_demo(tmp_path / "b", seed=7, n_cases=24)
    assert a == b
    files_a, files_b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert files_a == files_b and len(files_a) == 25  # 24 images and the manifest
    c = generate_demo(tmp_path / "c", seed=8, n_cases=24)
    assert [x.case_id for x in c] != [x.case_id for x in a]
    assert _files(tmp_path / "c")[MANIFEST_NAME] != files_a[MANIFEST_NAME]


@pytest.mark.parametrize("n", [MIN_CASES_ALL_SPLITS, 400, 600, 800])
def test_every_finding_of_every_modality_in_every_split(n: int) -> None:
    plan = _plan(n)
    assert len(plan) == n
    kt = default_knowledge()
    for m in MODALITIES:
        for f in kt.findings_for(m):
            stated = {s.split for s in plan if s.modality == m and s.stated.name == f.name}
            shown = {s.split for s in plan if s.modality == m and s.shown.name == f.name}
            assert stated == shown == set(SPLITS), (m, f.name)
        for kind in KINDS:
            assert {s.split for s in plan if s.modality == m and s.kind == kind} == set(SPLITS)


def test_mix_and_split_proportions() -> None:
    plan = _plan(600)
    by_mod = Counter(s.modality for s in plan)
    assert set(by_mod.values()) == {150}
    kinds = Counter(s.kind for s in plan)
    assert kinds["none"] == 300 and abs(kinds["treatment_mismatch"] - 150) <= 4
    splits = Counter(s.split for s in plan)
    assert SPLITS == ("train", "review", "val", "test")
    for split, share in zip(SPLITS, SPLIT_FRACTIONS, strict=True):
        assert abs(splits[split] / 600 - share) < 0.04, splits


def test_split_fractions_move_cases_between_splits_and_change_nothing_else() -> None:
    """The review split is carved out of the same plan: with other fractions a seed gives the
    same scenarios, in the same order (so the same images), only in other splits."""
    kt = default_knowledge()
    a = plan_scenarios(kt, 300, (0.5, 0.25, 0.25), SPLIT_FRACTIONS, np.random.default_rng(5))
    b = plan_scenarios(kt, 300, (0.5, 0.25, 0.25), (0.6, 0.0, 0.2, 0.2), np.random.default_rng(5))
    strip = lambda plan: [(s.modality, s.kind, s.stated, s.shown, s.treatment) for s in plan]  # noqa: E731
    assert strip(a) == strip(b)
    assert {s.split for s in b} == {"train", "val", "test"}
    assert Counter(s.split for s in a)["review"] > 0


def test_ground_truth_of_each_scenario_kind() -> None:
    kt = default_knowledge()
    plan = _plan(600, seed=3)
    for s in plan:
        acceptable = kt.is_acceptable(s.modality, s.stated.name, s.treatment)
        if s.kind == "none":
            assert (
                acceptable and s.shown == s.stated and s.severity is None and s.cost_impact == 0.0
            )
        elif s.kind == "treatment_mismatch":
            assert acceptable is False and s.shown == s.stated
            assert s.severity == kt.severity_of(s.treatment) and s.cost_impact == kt.cost_of(
                s.treatment
            )
        else:
            assert s.kind == "unsupported_by_image"
            assert acceptable and s.shown.visual != s.stated.visual
            assert s.severity == kt.severity_of(s.treatment)
    # Critical errors exist, so critical misses can be measured.
    assert any(s.severity == "critical" for s in plan if s.kind == "treatment_mismatch")
    assert any(s.severity == "critical" for s in plan if s.kind == "unsupported_by_image")


def test_generated_cases_manifest_and_images(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    cases = generate_demo(out, seed=1, n_cases=48)
    lines = (out / MANIFEST_NAME).read_text(encoding="utf-8").splitlines()
    assert [Case.from_dict(json.loads(line)) for line in lines] == cases
    assert [json.loads(line)["meta"] for line in lines] == [c.meta for c in cases]
    assert len({c.case_id for c in cases}) == 48
    for c in cases:
        data = (out / c.image).read_bytes()
        assert c.image == f"images/{hashlib.sha256(data).hexdigest()}.png"
        img = load_image(out / c.image)
        assert img.pixels.shape[:2] == (224, 224)
        assert img.is_greyscale == (c.modality != "histopathology")
        assert (
            c.meta["shown_visual"]
            == default_knowledge().finding(c.modality, c.meta["shown_finding"]).visual
        )
        assert c.meta["scenario"] == c.error_type
        assert (c.meta["shown_visual"] != c.meta["stated_visual"]) == (
            c.error_type == "unsupported_by_image"
        )
    # The demo manifest imports as it is: every row valid, images stored by the same hashes.
    res = read_manifest(out / MANIFEST_NAME, tmp_path / "ws" / "images")
    assert res.errors == [] and [c.image for c in res.cases] == [c.image for c in cases]
    assert res.cases[0].meta["shown_finding"] == cases[0].meta["shown_finding"]


def _px(v: float, size: int = 224) -> int:
    return int(round((v + 1.0) / 2.0 * (size - 1)))


def _disk_and_ring(
    img: np.ndarray, lesion: dict, inner: float, r0: float, r1: float
) -> tuple[float, float]:
    size = img.shape[0]
    yy, xx = np.mgrid[0:size, 0:size]
    d = np.hypot(yy - _px(lesion["y"], size), xx - _px(lesion["x"], size)) / (
        lesion["r"] * (size - 1) / 2
    )
    return float(img[d < inner].mean()), float(img[(d > r0) & (d < r1)].mean())


@pytest.mark.parametrize("seed", range(4))
def test_phantom_findings_are_visible(seed: int) -> None:
    rng = lambda: np.random.default_rng(seed)  # noqa: E731
    img, les = render("xray", "nodule", rng())
    inside, around = _disk_and_ring(img.astype(float), les, 0.5, 1.6, 2.5)
    assert inside > around + 25  # a bright round spot in the lung
    img, les = render("ultrasound", "cyst", rng())
    inside, around = _disk_and_ring(img.astype(float), les, 0.6, 1.3, 2.0)
    assert inside < 0.35 * around  # anechoic
    img, les = render("ultrasound", "solid_mass", rng())
    inside, around = _disk_and_ring(img.astype(float), les, 0.6, 1.3, 2.0)
    assert inside < 0.8 * around
    img, les = render("mri", "bleed", rng())
    inside, around = _disk_and_ring(img.astype(float), les, 0.6, 1.8, 2.5)
    assert inside > 190 and inside > around + 60
    img, les = render("mri", "mass", rng())
    core, rim = _disk_and_ring(img.astype(float), les, 0.5, 0.8, 0.95)
    assert rim > core + 60  # ring enhancement around a dark core
    atyp, info_a = render("histopathology", "atypical", rng())
    norm, info_n = render("histopathology", "normal", rng())
    assert info_a["mean_radius_px"] > 1.6 * info_n["mean_radius_px"]
    purple = lambda rgb: float(((rgb[..., 0] < 150) & (rgb[..., 2] > rgb[..., 1])).mean())  # noqa: E731
    assert purple(atyp) > 3 * purple(norm)  # crowded, large, dark nuclei


def test_every_visual_renders_in_range() -> None:
    for modality, visuals in VISUALS.items():
        for visual in visuals:
            px, _ = render(modality, visual, np.random.default_rng(0), 96)
            assert px.dtype == np.uint8 and px.shape[:2] == (96, 96)
            assert px.std() > 10  # not a blank image
    with pytest.raises(ValueError, match="unknown visual"):
        render("xray", "bleed", np.random.default_rng(0))
    with pytest.raises(ValueError, match="no phantom"):
        render("ct", "none", np.random.default_rng(0))


def test_config_is_validated() -> None:
    for bad in (
        {"n_cases": 0},
        {"seed": -1},
        {"image_size": 8},
        {"mix": (0.5, 0.5)},
        {"splits": (0, 0, 0, 0)},
        {"splits": (0.6, 0.2, 0.2)},  # the old train/val/test fractions: review is missing
    ):
        with pytest.raises(ValueError):
            DemoConfig(**bad)  # type: ignore[arg-type]


def test_cancel_stops_before_the_manifest(tmp_path: Path) -> None:
    p = Progress()
    p.cancel()
    with pytest.raises(Canceled):
        generate_demo(tmp_path, n_cases=8, progress=p)
    assert not (tmp_path / MANIFEST_NAME).exists()
    events = []
    generate_demo(tmp_path, n_cases=8, progress=Progress(events.append))
    assert events[-1].step == events[-1].total == 8

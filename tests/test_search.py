"""The search (issue 8): controller, baselines, evaluation with t*, executors, log/resume, cards, CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nasdip_zoo import Backbone, Card, SearchSpace, get_genotype
from nasdip_zoo.cli import main
from nasdip_zoo.search import (
    CandidateResult,
    ControllerSearch,
    DIPEvaluator,
    LocalExecutor,
    RandomSearch,
    RegularizedEvolution,
    SearchRunner,
    TaskProtocol,
    export_cards,
    load_training_images,
    read_log,
)
from nasdip_zoo.search.controller import default_connection_tokens
from nasdip_zoo.search.evaluate import estimate_t_star
from nasdip_zoo.search.runner import VOLATILE_FIELDS

ROOT = Path(__file__).resolve().parents[1]
SPACE = SearchSpace(backbone=Backbone(channels=8, skip_channels=8))
DIP_SETTINGS = {"lr": 0.01, "reg_noise_std": 1 / 30, "ema": 0.99, "input_channels": 32, "input_scale": 0.1}


def stable(entries):
    """A log without the fields that legitimately differ between runs (seconds, worker)."""
    return [{k: v for k, v in e.items() if k not in VOLATILE_FIELDS} for e in entries]


class SyntheticEvaluator:
    """Reward = 10 dB x the fraction of tokens equal to a hidden target; counts its calls."""

    def __init__(self, space: SearchSpace, target: list[int]) -> None:
        self.space, self.target, self.calls = space, target, 0

    def __call__(self, genotype, seed=0, thresholds=None) -> CandidateResult:
        self.calls += 1
        tokens = self.space.encode(genotype)
        r = 10.0 * sum(a == b for a, b in zip(tokens, self.target)) / len(tokens)
        return CandidateResult(reward=r, t_star=1, curve=[r], per_image=[r], images=1, worker="synthetic")


def synthetic_reward(tokens, target):
    return 10.0 * sum(a == b for a, b in zip(tokens, target)) / len(target)


# ----------------------------------------------------------------------------- controller
def test_controller_masks_invalid_cells_and_is_seeded():
    c1, c2 = ControllerSearch(SPACE, seed=3), ControllerSearch(SPACE, seed=3)
    a, b = c1.ask(60), c2.ask(60)
    assert a == b, "same seed, same samples"
    assert all(SPACE.is_valid(t) for t in a)
    cells = {SPACE.decode(t).cell.upsample for t in a}
    assert "pixel_shuffle" in cells  # the masked op is still reachable, only its invalid combinations are not
    assert len({tuple(t) for t in a}) > 50  # an untrained controller explores
    assert ControllerSearch(SPACE, seed=4).ask(5) != a[:5]


def test_controller_learns_better_than_random_search():
    """On a hidden target, REINFORCE with the paper's settings beats random sampling at equal budget."""
    budget, gains = 160, []
    for seed in range(3):
        target = SPACE.sample_tokens(100 + seed)
        ctrl, rand = ControllerSearch(SPACE, seed=seed), RandomSearch(SPACE, seed=seed)
        rc, rr = [], []
        for _ in range(budget):
            for s, out in ((ctrl, rc), (rand, rr)):
                toks = s.ask(1)
                r = [synthetic_reward(t, target) for t in toks]
                s.tell(toks, r)
                out += r
        q = budget // 4
        gains.append(sum(rc[-q:]) / q - sum(rr) / budget)
    assert sum(gains) / len(gains) > 0.5, gains  # random: ~4.1 on this scale; the controller ~4.9+ by the end


def test_controller_staged_fixes_connections_then_best_cell():
    c = ControllerSearch(SPACE, seed=0, mode="staged", cell_budget=4)
    k = SPACE.num_cell_decisions
    default = default_connection_tokens(SPACE)
    assert SPACE.decode([0] * k + default).connections.offsets == (0,)
    rewards = {}
    for _ in range(2):
        assert c.stage == "cell"
        toks = c.ask(2)
        assert all(t[k:] == default for t in toks)
        r = [float(i + len(rewards)) for i in range(2)]
        rewards.update({tuple(t): x for t, x in zip(toks, r)})
        c.tell(toks, r)
    best = max(rewards, key=rewards.get)
    assert c.stage == "connections"
    toks = c.ask(3)
    assert all(t[:k] == list(best[:k]) for t in toks)
    assert len({tuple(t[k:]) for t in toks}) > 1
    with pytest.raises(ValueError, match="cell_budget"):
        ControllerSearch(SPACE, mode="staged")


def test_controller_tell_must_match_ask():
    c = ControllerSearch(SPACE, seed=0)
    toks = c.ask(2)
    with pytest.raises(ValueError, match="last ask"):
        c.tell(toks[:1], [1.0])


# ----------------------------------------------------------------------------- baselines
def test_regularized_evolution_mutates_one_token_and_ages():
    ev = RegularizedEvolution(SPACE, seed=0, population=4, sample_size=2)
    first = ev.ask(4)
    ev.tell(first, [1.0, 2.0, 3.0, 4.0])
    children = ev.ask(20)
    for child in children:
        assert SPACE.is_valid(child)
        assert min(sum(a != b for a, b in zip(child, p)) for p in first) == 1
    ev.tell(children[:2], [0.0, 0.0])
    assert len(ev.population) == 4 and [t for t, _ in ev.population][:2] == first[2:]  # the two oldest died
    with pytest.raises(ValueError, match="population"):
        RegularizedEvolution(SPACE, population=3, sample_size=5)


# ----------------------------------------------------------------------------- evaluation
def test_estimate_t_star_is_argmax_of_mean_curve():
    t, r, mean = estimate_t_star([[10, 12, 11, 9], [20, 21, 23, 22]])
    assert (t, r) == (3, 17.0) and mean == [15.0, 16.5, 17.0, 15.5]
    t, r, _ = estimate_t_star([[10, float("nan"), 9], [10, 14, 9]])  # a rolled-back step carries the last PSNR
    assert (t, r) == (2, 12.0)


def make_train_dir(path: Path, n: int = 2, size: int = 24) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        x = np.linspace(0, 1, size)
        img = np.stack([np.outer(x, x), np.outer(1 - x, x), np.full((size, size), 0.5)], -1)
        img = np.clip(img + 0.05 * rng.standard_normal(img.shape), 0, 1)
        Image.fromarray((img * 255).astype(np.uint8)).save(path / f"img{i}.png")
    return path


@pytest.fixture(scope="module")
def train_images(tmp_path_factory):
    d = make_train_dir(tmp_path_factory.mktemp("train"))
    return load_training_images(d, crop=16, images=2)


def test_load_training_images_crops_and_checks(tmp_path):
    d = make_train_dir(tmp_path / "t", n=3, size=24)
    imgs = load_training_images(d, crop=16, images=2)
    assert [tuple(i.shape) for i in imgs] == [(1, 3, 16, 16)] * 2
    with pytest.raises(ValueError, match="holds only 3"):
        load_training_images(d, crop=16, images=5)
    with pytest.raises(ValueError, match="crop=64"):
        load_training_images(d, crop=64, images=1)
    with pytest.raises(FileNotFoundError, match="train-dir"):
        load_training_images(tmp_path / "missing")


def test_dip_evaluator_reward_is_mean_psnr_at_t_star(train_images):
    ev = DIPEvaluator(train_images, TaskProtocol("denoise"), iterations=6)
    g = SPACE.sample(1)
    res = ev(g, seed=0)
    assert res.images == 2 and not res.abandoned and len(res.curve) == 6
    assert res.t_star == 1 + int(np.argmax(res.curve))
    assert res.reward == pytest.approx(max(res.curve)) == pytest.approx(sum(res.per_image) / 2)
    assert 5 < res.reward < 40 and set(res.rung_scores) == {"1"}
    again = ev(g, seed=0)
    assert again.curve == res.curve  # deterministic: the reward of a genotype is reproducible
    # successive halving: a threshold no candidate reaches stops it after the first image
    cut = ev(g, seed=0, thresholds={1: 1e9})
    assert cut.abandoned and cut.images == 1 and cut.reward == pytest.approx(res.rung_scores["1"])


def test_a_diverging_candidate_is_logged_not_fatal(train_images, monkeypatch, tmp_path):
    from nasdip_zoo import restore

    def boom(self, *a, **k):
        raise restore.RestorationDiverged("iteration 3: NaN/Inf in the output or loss")

    monkeypatch.setattr(restore.DIPRestorer, "restore", boom)
    ev = DIPEvaluator(train_images, iterations=3)
    entries = SearchRunner(SPACE, RandomSearch(SPACE), ev, tmp_path, budget=2, progress=False).run()
    assert [e["error"] for e in entries] == ["iteration 3: NaN/Inf in the output or loss"] * 2
    assert all(e["abandoned"] and e["reward"] == 0.0 for e in entries)
    assert export_cards(entries, tmp_path / "cards", task="denoise", settings=DIP_SETTINGS) == []


@pytest.mark.parametrize("task", ["sr", "inpaint"])
def test_dip_evaluator_other_tasks(train_images, task):
    ev = DIPEvaluator(train_images[:1], TaskProtocol(task, factor=2), iterations=3, curve_every=2)
    res = ev(SPACE.sample(2), seed=0)
    assert len(res.curve) == 1 and res.t_star in (1, 2, 3) and math.isfinite(res.reward)


def test_dip_evaluator_user_operator(train_images):
    def degrade(gt, seed):  # a user's operator: blur by 2x2 average pooling + upsample, observed at full size
        pool = torch.nn.functional.avg_pool2d
        return pool(gt, 2), {"operator": lambda x: pool(x, 2), "scale": 2}

    res = DIPEvaluator(train_images[:1], degrade=degrade, iterations=3)(SPACE.sample(3), seed=0)
    assert math.isfinite(res.reward)


# ----------------------------------------------------------------------------- runner: cache, resume, errors
class RepeatSearcher(RandomSearch):
    """Asks the same two genotypes over and over (to exercise the cache)."""

    def ask(self, n):
        return [SPACE.sample_tokens(i % 2) for i in range(n)]


def test_cache_never_evaluates_a_genotype_twice(tmp_path):
    ev = SyntheticEvaluator(SPACE, SPACE.sample_tokens(7))
    entries = SearchRunner(SPACE, RepeatSearcher(SPACE), ev, tmp_path / "s", budget=6, batch_size=3,
                           progress=False).run()
    assert ev.calls == 2 and len(entries) == 6
    assert [e["cached"] for e in entries] == [False, False, True, True, True, True]
    assert entries[2]["reward"] == entries[0]["reward"] and entries[2]["seconds"] == 0.0


class Kill(Exception):
    pass


@pytest.mark.parametrize("algorithm", ["controller", "evolution"])
def test_resume_after_kill_gives_the_same_log(tmp_path, algorithm):
    target = SPACE.sample_tokens(11)

    def make(seed=5):
        if algorithm == "controller":
            return ControllerSearch(SPACE, seed=seed)
        return RegularizedEvolution(SPACE, seed=seed, population=3, sample_size=2)

    full = SearchRunner(SPACE, make(), SyntheticEvaluator(SPACE, target), tmp_path / "full", budget=8,
                        batch_size=3, progress=False).run()

    def killer(entry):
        if entry["index"] == 4:  # mid-batch: the checkpoint is at 3 candidates, the log holds 5
            raise Kill

    ev = SyntheticEvaluator(SPACE, target)
    with pytest.raises(Kill):
        SearchRunner(SPACE, make(), ev, tmp_path / "cut", budget=8, batch_size=3, callback=killer,
                     progress=False).run()
    assert len(read_log(tmp_path / "cut" / "candidates.jsonl")) == 5
    calls_before = ev.calls
    with open(tmp_path / "cut" / "candidates.jsonl", "a") as f:
        f.write('{"index": 5, "torn')  # a kill in the middle of a write
    resumed = SearchRunner(SPACE, make(), ev, tmp_path / "cut", budget=8, batch_size=3, progress=False).run(resume=True)
    assert stable(resumed) == stable(full)
    assert stable(read_log(tmp_path / "cut" / "candidates.jsonl")) == stable(full)
    assert ev.calls - calls_before == len({json.dumps(e["genotype"]) for e in full[5:]} - {json.dumps(e["genotype"]) for e in full[:5]})
    # a different seed is a different search: refuse to resume it
    with pytest.raises(ValueError, match="settings differ"):
        SearchRunner(SPACE, make(), ev, tmp_path / "cut", budget=8, batch_size=3, seed=9, progress=False).run(resume=True)
    with pytest.raises(ValueError, match="--resume"):
        SearchRunner(SPACE, make(), ev, tmp_path / "cut", budget=8, batch_size=3, progress=False).run()


def test_halving_thresholds_from_earlier_candidates(tmp_path):
    r = SearchRunner(SPACE, RandomSearch(SPACE), SyntheticEvaluator(SPACE, [0] * 16), tmp_path, budget=1,
                     halving_keep=0.5, halving_min=4, progress=False)
    entries = [{"rung_scores": {"1": s}} for s in (20.0, 21.0, 22.0)]
    assert r.thresholds(entries) == {}
    entries.append({"rung_scores": {"1": 23.0, "2": 22.5}})
    assert r.thresholds(entries) == {1: 22.0}  # keep the top half at rung 1; rung 2 has too few scores
    assert r.thresholds(entries + [{"rung_scores": {"1": 1.0}, "cached": True}]) == {1: 22.0}


def test_exported_cards_load_with_get_genotype(tmp_path):
    ev = SyntheticEvaluator(SPACE, SPACE.sample_tokens(3))
    entries = SearchRunner(SPACE, RandomSearch(SPACE, 1), ev, tmp_path / "s", budget=5, progress=False).run()
    entries[0] = {**entries[0], "abandoned": True, "reward": 99.0}  # abandoned candidates are never exported
    paths = export_cards(entries, tmp_path / "cards", k=2, task="denoise", settings=DIP_SETTINGS,
                         provenance={"budget": 5, "training_set": "synthetic"}, iterations=1, images_note="16x16 crops")
    assert len(paths) == 2
    best = max((e for e in entries if not e.get("abandoned")), key=lambda e: (e["reward"], -e["index"]))
    g = get_genotype(str(paths[0]))
    assert g.to_dict() == best["genotype"]
    card = Card.load(paths[0])
    assert card.task == "denoise" and card.dip.t_star == best["t_star"] and card.dip.lr == 0.01
    assert "16x16 crops" in card.dip.t_star_source and "hit the search's 1-iteration budget" in card.dip.t_star_source
    assert card.provenance["search"]["budget"] == 5 and card.provenance["search"]["reward_psnr"] == best["reward"]


# ----------------------------------------------------------------------------- executors: local vs Ray
@pytest.fixture(scope="module")
def ray_executor():
    """One local Ray instance (2 CPUs) for the module: its ~20 s start is paid once."""
    ray = pytest.importorskip("ray")
    from nasdip_zoo.search import RayExecutor

    ex = RayExecutor(num_cpus=2, task_cpus=1)
    yield ex
    ex.close()
    if ray.is_initialized():
        ray.shutdown()


def test_tiny_search_same_log_local_and_ray(tmp_path, train_images, ray_executor):
    """2 images of 16x16, 4 candidates, 5 iterations each, batches of 2, halving on: identical logs."""

    def search(executor, out):
        ev = DIPEvaluator(train_images, TaskProtocol("denoise"), iterations=5)
        return SearchRunner(SPACE, ControllerSearch(SPACE, seed=0), ev, out, budget=4, batch_size=2,
                            executor=executor, halving_keep=0.5, halving_min=2, progress=False).run()

    local = search(LocalExecutor(), tmp_path / "local")
    remote = search(ray_executor, tmp_path / "ray")
    assert len(local) == 4 and all(math.isfinite(e["reward"]) for e in local)
    assert stable(local) == stable(remote)
    assert {e["worker"].split(":")[1] for e in remote if not e["cached"]}.isdisjoint({str(__import__("os").getpid())})


# ----------------------------------------------------------------------------- CLI and recipes
def test_cli_search_end_to_end_and_resume(tmp_path, capsys):
    d = make_train_dir(tmp_path / "train")
    out = tmp_path / "out"
    args = ["search", "--task", "denoise", "--train-dir", str(d), "--budget", "2", "--images", "2", "--crop", "16",
            "--iterations", "3", "--channels", "8", "--out", str(out), "--no-progress", "--plot", "--top-k", "1"]
    assert main(args) == 0
    log = read_log(out / "controller" / "candidates.jsonl")
    assert len(log) == 2
    assert (out / "rewards.png").stat().st_size > 1000
    card = Card.load(out / "controller" / "cards" / "search-denoise-controller-1.json")
    assert card.provenance["search"]["training_set"]["images"] == 2 and card.dip.t_star <= 3
    assert main(args) == 2 and "--resume" in capsys.readouterr().err
    assert main(args + ["--resume", "--budget", "3"]) == 0  # a larger budget continues the same search
    assert stable(read_log(out / "controller" / "candidates.jsonl"))[:2] == stable(log)


def test_cli_errors_and_recipes(tmp_path, capsys):
    assert main(["search", "--task", "denoise", "--budget", "2"]) == 2
    assert "--train-dir" in capsys.readouterr().err
    bad = tmp_path / "r.json"
    bad.write_text(json.dumps({"task": "denoise", "bugdet": 3}))
    assert main(["search", "--recipe", str(bad)]) == 2
    assert "bugdet" in capsys.readouterr().err
    from nasdip_zoo.search.cli import DEFAULTS

    recipes = sorted((ROOT / "search" / "recipes").glob("*.json"))
    assert {p.stem for p in recipes} >= {f"{t}-{k}" for t in ("denoise", "sr", "inpaint") for k in ("cpu", "paper")}
    for p in recipes:
        raw = {k.replace("-", "_"): v for k, v in json.loads(p.read_text()).items() if not k.startswith("_")}
        assert set(raw) <= set(DEFAULTS), p
        if p.stem.endswith("paper"):
            assert raw["images"] == 100 and raw["crop"] == 0 and raw["channels"] == 128


def test_cli_search_on_ray_matches_local(tmp_path, ray_executor):
    """`--executor ray` (joining the module's Ray instance) writes the same log as `--executor local`."""
    d = make_train_dir(tmp_path / "train")
    base = ["search", "--task", "denoise", "--train-dir", str(d), "--budget", "2", "--images", "2", "--crop", "16",
            "--iterations", "3", "--channels", "8", "--batch-size", "2", "--algorithm", "evolution", "--no-progress"]
    assert main(base + ["--out", str(tmp_path / "local")]) == 0
    assert main(base + ["--out", str(tmp_path / "ray"), "--executor", "ray"]) == 0
    local = read_log(tmp_path / "local" / "evolution" / "candidates.jsonl")
    remote = read_log(tmp_path / "ray" / "evolution" / "candidates.jsonl")
    assert len(local) == 2 and stable(local) == stable(remote)
    assert all(e["worker"] != local[0]["worker"] for e in remote)

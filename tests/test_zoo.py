"""The zoo: bundled cards, their settings, the `nasdip genotypes` table, and the built wheel."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from nasdip_zoo import Card, Genotype, get_card, get_genotype, list_genotypes
from nasdip_zoo.zoo import bundled_cards_dir

REPO = Path(__file__).resolve().parents[1]
EXPECTED = {
    "dip-skip",
    *(f"nasdip-{t}{s}" for t in ("sr", "denoise", "inpaint") for s in ("", "-cell-only", "-connections-only")),
}
RELEASED_MATRICES = {
    "nasdip-sr": (119, [[1, 0, 0, 1, 0], [1, 1, 0, 0, 1], [0, 1, 1, 0, 0], [0, 0, 1, 1, 0], [0, 0, 0, 1, 1]]),
    "nasdip-denoise": (158, [[1, 1, 1, 1, 1], [0, 1, 1, 1, 1], [0, 0, 1, 1, 1], [0, 0, 0, 1, 1], [0, 0, 0, 0, 1]]),
    "nasdip-inpaint": (86, [[1, 1, 0, 0, 0], [0, 1, 1, 0, 0], [1, 0, 1, 1, 0], [0, 1, 0, 1, 1], [0, 0, 1, 0, 1]]),
}


def test_the_zoo_lists_every_card():
    assert set(list_genotypes()) == EXPECTED
    assert set(list_genotypes("sr")) == {"dip-skip", "nasdip-sr", "nasdip-sr-cell-only", "nasdip-sr-connections-only"}


@pytest.mark.parametrize("name", sorted(RELEASED_MATRICES))
def test_released_cards_are_exactly_the_released_networks(name):
    index, matrix = RELEASED_MATRICES[name]
    g = get_genotype(name)
    assert g.model_index() == index
    assert [list(r) for r in g.matrix] == matrix
    assert g == Genotype.from_model_index(index, matrix)


def test_cards_carry_the_papers_settings_and_t_star():
    sr, den, inp = (get_card(f"nasdip-{t}") for t in ("sr", "denoise", "inpaint"))
    assert (sr.dip.lr, sr.dip.reg_noise_std, sr.dip.t_star, sr.dip.released_iterations, sr.dip.ema) == (0.01, 0.03, 4500, 2000, None)
    assert (den.dip.lr, den.dip.t_star, den.dip.released_iterations, den.dip.ema) == (0.01, 3500, 3000, 0.99)
    assert den.dip.reg_noise_std == pytest.approx(1 / 30)
    assert (inp.dip.lr, inp.dip.t_star, inp.dip.released_iterations, inp.out_channels) == (0.001, 9000, 11000, 1)
    assert all(c.dip.input_channels == 32 and c.dip.input_scale == 0.1 for c in (sr, den, inp))
    assert "YunChunChen/NAS-DIP-pytorch" in json.dumps(sr.provenance)


def test_ablations_are_the_papers_two_variants():
    for task in ("sr", "denoise", "inpaint"):
        full = get_genotype(f"nasdip-{task}")
        cell_only = get_genotype(f"nasdip-{task}-cell-only")
        conn_only = get_genotype(f"nasdip-{task}-connections-only")
        assert cell_only.cell == full.cell and cell_only.connections.offsets == (0,)
        assert conn_only.matrix == full.matrix and conn_only.cell == get_genotype("dip-skip").cell


def test_dip_skip_card_has_settings_for_every_task():
    card = get_card("dip-skip")
    assert set(card.settings) == {"sr", "denoise", "inpaint"}
    assert card.dip_for("inpaint").lr == 0.001
    with pytest.raises(ValueError, match="no DIP settings for task 'inpaint'"):
        get_card("nasdip-sr").dip_for("inpaint")


def test_cards_round_trip_through_json(tmp_path):
    for name in list_genotypes():
        card = get_card(name)
        assert Card.load(card.save(tmp_path / f"{name}.json")) == card
        assert json.loads((bundled_cards_dir() / f"{name}.json").read_text()) == card.to_dict()


def test_references_by_path_and_errors(tmp_path):
    g = get_genotype("nasdip-sr").replace(channels=16, skip_channels=16)
    p = g.save(tmp_path / "mine.json")
    assert get_genotype(str(p)) == g
    assert get_card(p).settings == get_card("dip-skip").settings
    with pytest.raises(ValueError, match="bundled genotypes: dip-skip"):
        get_card("nasdip-dehaze")
    with pytest.raises(ValueError, match="no such file"):
        get_card(str(tmp_path / "nope.json"))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**get_card("nasdip-sr").to_dict(), "model_index": 5}))
    with pytest.raises(ValueError, match="model_index 5 does not match"):
        get_card(bad)
    bad.write_text(json.dumps({**get_card("nasdip-sr").to_dict(), "schema_version": 2}))
    with pytest.raises(ValueError, match="schema_version=2"):
        get_card(bad)


def test_cli_genotypes_table():
    out = subprocess.run(
        [sys.executable, "-m", "nasdip_zoo.cli", "genotypes"], capture_output=True, text=True, check=True, cwd=REPO
    ).stdout
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["name", "task"]
    row = next(line for line in lines if line.startswith("nasdip-sr "))
    assert "bicubic + depthwise_conv 5x5" in row and "3,512,835" in row and "sr 4500" in row
    assert len(lines) == 2 + len(EXPECTED)


def test_the_built_wheel_ships_the_cards(tmp_path):
    pytest.importorskip("hatchling")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(REPO)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("nasdip_zoo-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        z.extractall(tmp_path / "site")
    assert {f"nasdip_zoo/genotypes/{n}.json" for n in EXPECTED} <= set(names)
    assert "nasdip_zoo/data/astronaut96.png" in names
    code = (
        "import nasdip_zoo, nasdip_zoo.zoo as z; "
        "print(z.bundled_cards_dir()); print(len(nasdip_zoo.list_genotypes())); "
        "print(nasdip_zoo.count_parameters(nasdip_zoo.build_nasdip('nasdip-sr')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin"},
    ).stdout.split()
    assert out[0] == str(tmp_path / "site" / "nasdip_zoo" / "genotypes")
    assert out[1:] == [str(len(EXPECTED)), "3512835"]


def test_invalid_json_names_the_file(tmp_path):
    bad = tmp_path / "broken.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="broken.json: not valid JSON"):
        get_card(bad)
    with pytest.raises(ValueError, match="broken.json: not valid JSON"):
        Card.load(bad)

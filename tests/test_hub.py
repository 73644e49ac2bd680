"""The Hub integration, offline: local-dir and hf-hub references, the model card, the push plan, weights."""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import torch

huggingface_hub = pytest.importorskip("huggingface_hub")
import huggingface_hub.constants  # noqa: E402  (a lazy submodule: import it so monkeypatch can reach it)

import nasdip_zoo
from nasdip_zoo import NASDIPNet, build_nasdip, get_card, get_genotype
from nasdip_zoo import hub
from nasdip_zoo.cli import main
from nasdip_zoo.hub import from_pretrained, load_cards, push_genotypes, push_to_hub, render_model_card, save_pretrained

REPO = Path(__file__).resolve().parents[1]
GENOTYPES = REPO / "genotypes"
SHA = "0123456789abcdef0123456789abcdef01234567"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _tiny_card(name: str = "tiny", **changes) -> dict:
    """A bundled card shrunk to 8 channels (cheap to build), renamed."""
    card = get_card("nasdip-sr")
    g = card.genotype.replace(channels=8, skip_channels=8)
    data = {**card.to_dict(), "name": name, "genotype": {k: v for k, v in g.to_dict().items() if k != "schema_version"}}
    data.update(changes)
    return data


def _write(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return path


@pytest.fixture
def no_network(monkeypatch):
    """Any socket connection fails the test: these tests must never touch the network."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture
def hf_cache(tmp_path, monkeypatch, no_network):
    """An empty Hub cache in tmp_path, read with HF_HUB_OFFLINE=1 (env and the client's import-time flag)."""
    cache = tmp_path / "hf" / "hub"
    cache.mkdir(parents=True)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    return cache


def _cache_repo(cache: Path, repo_id: str, files: dict[str, bytes], sha: str = SHA, ref: str = "main") -> Path:
    """Lay out a repository as huggingface_hub caches it: blobs, snapshots/<sha>/..., refs/<ref>."""
    root = cache / ("models--" + repo_id.replace("/", "--"))
    snap = root / "snapshots" / sha
    for name, data in files.items():
        blob = root / "blobs" / _sha(data)
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        (snap / name).parent.mkdir(parents=True, exist_ok=True)
        (snap / name).symlink_to(blob)
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / ref).write_text(sha)
    return snap


class _ApiMustNotBeCalled:
    def __init__(self, *args, **kwargs):
        raise AssertionError("HfApi was used: a dry run / a failed validation must not touch the Hub")


# ----------------------------------------------------------------------------- import and registration
def test_import_registers_schemes_without_importing_huggingface_hub():
    code = ("import sys, nasdip_zoo, nasdip_zoo.zoo as z; "
            "print(sorted(z._SCHEMES), 'huggingface_hub' in sys.modules, 'safetensors' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO).stdout
    assert out.split("\n")[0] == "['hf-hub', 'local-dir'] False False"


# ----------------------------------------------------------------------------- the model card
def test_committed_model_card_is_the_rendering_of_the_cards():
    rendered = render_model_card(load_cards(GENOTYPES))
    assert (REPO / "MODEL_CARD.md").read_text(encoding="utf-8") == rendered, (
        "MODEL_CARD.md is stale: run `nasdip hub card genotypes -o MODEL_CARD.md`"
    )


def test_model_card_metadata_and_content():
    text = render_model_card(load_cards(GENOTYPES))
    card = huggingface_hub.ModelCard(text)
    assert card.data.library_name == "nasdip-zoo"
    assert card.data.license == "apache-2.0"
    assert {"arxiv:2008.11713", "deep-image-prior", "neural-architecture-search"} <= set(card.data.tags)
    # the model-index is generated from the cards' measured numbers (the cpu preset so far)
    values = {e["value"] for c in load_cards(GENOTYPES).values() for e in c.benchmarks.values()}
    assert card.data.eval_results and {r.metric_value for r in card.data.eval_results} <= values
    assert "| `nasdip-sr` | sr | Set5 x4 |" in text and "| PSNR-Y | 30.42 |" in text
    assert "https://arxiv.org/abs/2008.11713" in text
    assert "| `nasdip-sr` | sr | bicubic + depthwise_conv 5x5, leaky_relu |" in text and "3,512,835" in text
    assert "| `nasdip-denoise` | denoise | 0.01 | 0.03333 | 3500 | 3000 | 0.99 | paper |" in text
    assert "t\\* depends on the image size" in text and "400-700 iterations" in text
    assert 'get_card("hf-hub:<org>/<repo>/nasdip-' in text


def test_model_index_fills_in_from_the_cards_benchmarks(tmp_path):
    shutil.copytree(GENOTYPES, tmp_path / "g")
    for other in (tmp_path / "g").glob("*.json"):  # only this card's numbers, so the index is predictable
        stripped = json.loads(other.read_text())
        stripped["benchmarks"] = {}
        other.write_text(json.dumps(stripped))
    path = tmp_path / "g" / "nasdip-denoise.json"
    data = json.loads(path.read_text())
    data["benchmarks"] = {
        "denoise-9-t_star": {"dataset": "DIP denoising set (9 images)", "metric": "psnr", "value": 30.12,
                             "protocol": "sigma 25, 64 px crops", "iterations": 600},
        "denoise-9-oracle": {"dataset": "DIP denoising set (9 images)", "metric": "psnr", "value": 30.5, "oracle": True},
    }
    path.write_text(json.dumps(data))
    text = render_model_card(load_cards(tmp_path / "g"))
    results = huggingface_hub.ModelCard(text).data.eval_results
    assert [(r.task_type, r.dataset_name, r.metric_type, r.metric_value) for r in results] == [
        ("image-to-image", "DIP denoising set (9 images)", "psnr", 30.5),  # rows in the order of their ids
        ("image-to-image", "DIP denoising set (9 images)", "psnr", 30.12),
    ]
    assert "oracle" in results[0].metric_name and "at 600 iterations" in results[1].metric_name
    assert "| `nasdip-denoise` | denoise | DIP denoising set (9 images) | sigma 25, 64 px crops | psnr | 30.12 |" in text


def test_cli_card_check(tmp_path, capsys):
    assert main(["hub", "card", str(GENOTYPES), "-o", str(REPO / "MODEL_CARD.md"), "--check"]) == 0
    stale = tmp_path / "MODEL_CARD.md"
    stale.write_text("old")
    assert main(["hub", "card", str(GENOTYPES), "-o", str(stale), "--check"]) == 2
    assert "not the rendering" in capsys.readouterr().err
    assert main(["hub", "card", str(GENOTYPES), "-o", str(stale)]) == 0
    assert stale.read_text() == (REPO / "MODEL_CARD.md").read_text()


# ----------------------------------------------------------------------------- one source of truth
def test_hub_layout_is_genotypes_plus_model_card(monkeypatch, no_network):
    monkeypatch.setattr(huggingface_hub, "HfApi", _ApiMustNotBeCalled)
    plan = push_genotypes(GENOTYPES, "org/nasdip-genotypes", dry_run=True)
    expected = {p.name: p.read_bytes() for p in GENOTYPES.glob("*.json")}
    expected["README.md"] = (REPO / "MODEL_CARD.md").read_bytes()
    assert {f.path_in_repo: (f.size, f.sha256) for f in plan.files} == {
        name: (len(data), _sha(data)) for name, data in expected.items()
    }
    assert plan.dry_run and plan.repo_id == "org/nasdip-genotypes" and plan.commit_url is None


def test_the_wheels_cards_are_the_genotypes_folder(tmp_path):
    pytest.importorskip("hatchling")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(REPO)],
        check=True, capture_output=True,
    )
    (wheel,) = tmp_path.glob("nasdip_zoo-*.whl")
    with zipfile.ZipFile(wheel) as z:
        shipped = {Path(n).name: z.read(n) for n in z.namelist() if n.startswith("nasdip_zoo/genotypes/")}
    assert shipped == {p.name: p.read_bytes() for p in GENOTYPES.glob("*.json")}


# ----------------------------------------------------------------------------- local-dir:
def test_local_dir_references(tmp_path):
    one = tmp_path / "one"
    _write(one / "tiny.json", _tiny_card())
    card = get_card(f"local-dir:{one}")  # a single card: the name may be omitted
    assert card.name == "tiny" and card.genotype.backbone.channels == 8
    assert get_card(f"local-dir:{one}/tiny") == card == get_card(f"local-dir:{one}/tiny.json")
    assert get_genotype(f"local-dir:{one}/tiny") == card.genotype
    net = build_nasdip(f"local-dir:{one}")
    assert isinstance(net, NASDIPNet) and net(torch.rand(1, 32, 16, 16)).shape == (1, 3, 16, 16)

    many = tmp_path / "many"
    _write(many / "a.json", _tiny_card("a"))
    _write(many / "b.json", _tiny_card("b", task="sr"))
    assert get_card(f"local-dir:{many}/b").name == "b"
    with pytest.raises(ValueError, match=r"holds 2 cards; pick one with local-dir:.*/<name>, one of: a, b"):
        get_card(f"local-dir:{many}")


def test_local_dir_errors_name_the_bundled_alternatives(tmp_path):
    _write(tmp_path / "a.json", _tiny_card("a"))
    with pytest.raises(FileNotFoundError, match=r"no card 'nope.json'.*it has: a.*bundled genotypes.*nasdip-denoise"):
        get_card(f"local-dir:{tmp_path}/nope")
    with pytest.raises(FileNotFoundError, match="no such folder or file.*nasdip-sr"):
        get_card(f"local-dir:{tmp_path}/missing/dir/x")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no genotype cards.*nasdip-sr"):
        get_card(f"local-dir:{tmp_path / 'empty'}")
    _write(tmp_path / "v2" / "future.json", _tiny_card("future", schema_version=2))
    with pytest.raises(ValueError, match=r"schema_version=2 is not supported.*bundled genotypes.*dip-skip"):
        get_card(f"local-dir:{tmp_path / 'v2'}")


def test_bare_name_with_a_slash_suggests_hf_hub(tmp_path):
    for call in (get_card, get_genotype, build_nasdip):
        with pytest.raises(ValueError, match=r"write 'hf-hub:org/repo'.*Bundled genotypes: dip-skip"):
            call("org/repo")
    with pytest.raises(ValueError, match=r"'hf-hub:org/repo/nasdip-sr@v1'"):
        get_card("org/repo/nasdip-sr@v1")
    with pytest.raises(ValueError, match=r"write 'hf-hub:org/weights'"):
        from_pretrained("org/weights")
    # paths that exist keep working; a bad or missing file names the bundled genotypes too
    path = _write(tmp_path / "sub" / "tiny.json", _tiny_card())
    assert get_card(str(path)).name == "tiny"
    future = _write(tmp_path / "sub" / "future.json", _tiny_card("future", schema_version=2))
    with pytest.raises(ValueError, match="schema_version=2 is not supported.*Bundled genotypes: dip-skip"):
        get_card(str(future))
    with pytest.raises(ValueError, match="no such file.*bundled: dip-skip"):
        build_nasdip(str(tmp_path / "sub" / "missing.json"))
    with pytest.raises(ValueError, match="is a folder; load a card from it as 'local-dir:"):
        get_card(str(tmp_path / "sub"))


# ----------------------------------------------------------------------------- hf-hub: from a cache
def test_hf_hub_references_from_an_offline_cache(hf_cache, monkeypatch):
    cards = {"nasdip-sr.json": (GENOTYPES / "nasdip-sr.json").read_bytes(),
             "tiny.json": json.dumps(_tiny_card()).encode()}
    _cache_repo(hf_cache, "org/zoo", cards)
    _cache_repo(hf_cache, "org/single", {"tiny.json": cards["tiny.json"], "README.md": b"# card"})

    calls = []
    real = huggingface_hub.hf_hub_download

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", spy)
    assert get_card("hf-hub:org/zoo/nasdip-sr") == get_card("nasdip-sr")
    assert get_card("hf-hub:org/zoo/nasdip-sr@main") == get_card("nasdip-sr")
    assert get_card(f"hf-hub:org/zoo/tiny@{SHA}").name == "tiny"
    assert calls[0]["library_name"] == "nasdip-zoo" and calls[0]["library_version"] == nasdip_zoo.__version__
    assert calls[0]["local_files_only"] is True and calls[0]["cache_dir"] == str(hf_cache)
    assert get_card("hf-hub:org/single").name == "tiny"  # one card: the name may be omitted
    assert build_nasdip("hf-hub:org/single")(torch.rand(1, 32, 8, 8)).shape == (1, 3, 8, 8)
    with pytest.raises(ValueError, match="holds 2 cards; pick one with hf-hub:org/zoo/<name>, one of: nasdip-sr, tiny"):
        get_card("hf-hub:org/zoo")
    with pytest.raises(FileNotFoundError, match="not in the Hub cache.*nasdip-denoise"):
        get_card("hf-hub:org/zoo/nasdip-sr@v2")  # a revision that was never fetched
    with pytest.raises(FileNotFoundError, match="not in the Hub cache.*HF_HUB_OFFLINE=1"):
        get_card("hf-hub:org/zoo/absent")


def test_hf_hub_card_with_unknown_schema_version(hf_cache):
    _cache_repo(hf_cache, "org/future", {"f.json": json.dumps(_tiny_card("f", schema_version=7)).encode()})
    with pytest.raises(ValueError, match=r"hf-hub:org/future/f: .*schema_version=7.*bundled genotypes.*nasdip-inpaint"):
        get_card("hf-hub:org/future/f")


@pytest.mark.parametrize("ref", ["hf-hub:org/not-cached", "hf-hub:org/not-cached/nasdip-sr@v1"])
def test_offline_miss_is_immediate(hf_cache, ref):
    huggingface_hub.hf_hub_download, huggingface_hub.snapshot_download  # the client's lazy import is not the miss
    start = time.perf_counter()
    with pytest.raises(FileNotFoundError) as err:
        get_card(ref)
    assert time.perf_counter() - start < 0.5
    msg = str(err.value)
    assert "not in the Hub cache" in msg and "HF_HUB_OFFLINE=1" in msg and "nasdip-denoise" in msg
    assert "\n" not in msg


def test_bad_hub_references():
    for bad in ("hf-hub:justone", "hf-hub:a/b/c/d", "hf-hub:"):
        with pytest.raises(ValueError, match="is not a Hub reference.*bundled genotypes"):
            get_card(bad)
    assert hub.parse_hf_ref("org/repo") == ("org/repo", None, None)
    assert hub.parse_hf_ref("org/repo/nasdip-sr.json@refs/pr/1") == ("org/repo", "nasdip-sr", "refs/pr/1")


def test_cli_pull_from_the_cache_and_errors(hf_cache, tmp_path, capsys):
    snap = _cache_repo(hf_cache, "org/zoo", {"tiny.json": json.dumps(_tiny_card()).encode()})
    assert main(["hub", "pull", "org/zoo"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == str(snap) and "hf-hub:org/zoo/tiny  (sr, t* sr 4500)" in out
    assert main(["hub", "pull", "org/elsewhere"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nasdip: error: hf-hub:org/elsewhere is not in the Hub cache") and err.count("\n") == 1


# ----------------------------------------------------------------------------- publishing
class _FakeApi:
    """Records what a real push would send."""

    instances: list = []

    def __init__(self, **kwargs):
        self.kwargs, self.calls = kwargs, []
        _FakeApi.instances.append(self)

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", repo_id, kwargs))

    def create_branch(self, repo_id, **kwargs):
        self.calls.append(("create_branch", repo_id, kwargs))

    def create_commit(self, repo_id, operations, **kwargs):
        files = {op.path_in_repo: Path(op.path_or_fileobj).read_bytes() for op in operations}
        self.calls.append(("create_commit", repo_id, files, kwargs))
        return type("CommitInfo", (), {"commit_url": f"https://hub/{repo_id}/commit/1", "pr_url": None})()


@pytest.fixture
def online_fake_hub(monkeypatch, no_network):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub, "HfApi", _FakeApi)
    _FakeApi.instances = []
    return _FakeApi


def test_push_uploads_exactly_the_plan(online_fake_hub):
    dry = push_genotypes(GENOTYPES, "org/zoo", revision="v1", dry_run=True)
    done = push_genotypes(GENOTYPES, "org/zoo", revision="v1", token="hf_x")
    (api,) = online_fake_hub.instances
    assert api.kwargs == {"token": "hf_x", "library_name": "nasdip-zoo", "library_version": nasdip_zoo.__version__}
    assert [c[0] for c in api.calls] == ["create_repo", "create_branch", "create_commit"]
    _, repo, files, kwargs = api.calls[-1]
    assert repo == "org/zoo" and kwargs["revision"] == "v1" and kwargs["create_pr"] is False
    assert {n: (len(d), _sha(d)) for n, d in files.items()} == {f.path_in_repo: (f.size, f.sha256) for f in dry.files}
    assert done.files == dry.files and not done.dry_run and done.commit_url == "https://hub/org/zoo/commit/1"


def test_push_validates_every_card_before_uploading(tmp_path, online_fake_hub):
    _write(tmp_path / "good.json", _tiny_card("good"))
    _write(tmp_path / "future.json", _tiny_card("future", schema_version=2))
    _write(tmp_path / "renamed.json", _tiny_card("other"))
    _write(tmp_path / "badbench.json", _tiny_card("badbench", benchmarks={"x": {"dataset": "Set5", "metric": "psnr"}}))
    with pytest.raises(ValueError) as err:
        push_genotypes(tmp_path, "org/zoo")
    msg = str(err.value)
    assert msg.startswith("3 invalid card(s), nothing uploaded")
    assert "schema_version=2" in msg and "must equal the file name 'renamed'" in msg and "lacks ['value']" in msg
    assert online_fake_hub.instances == []
    (tmp_path / "nothing").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no genotype cards"):
        push_genotypes(tmp_path / "nothing", "org/zoo")
    with pytest.raises(ValueError, match="not of the form org/name"):
        push_genotypes(GENOTYPES, "just-a-name", dry_run=True)


def test_push_refuses_offline(monkeypatch, no_network):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub, "HfApi", _ApiMustNotBeCalled)
    with pytest.raises(ValueError, match="cannot push while HF_HUB_OFFLINE=1.*--dry-run"):
        push_genotypes(GENOTYPES, "org/zoo")


def test_cli_push_dry_run(monkeypatch, capsys, no_network):
    monkeypatch.setattr(huggingface_hub, "HfApi", _ApiMustNotBeCalled)
    assert main(["hub", "push", str(GENOTYPES), "--repo-id", "org/zoo", "--create-pr", "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "would upload 11 files to org/zoo@main (as a pull request):"
    readme = (REPO / "MODEL_CARD.md").read_bytes()
    assert lines[1].split() == ["README.md", str(len(readme)), "bytes", "sha256", _sha(readme)]
    assert [line.split()[0] for line in lines[2:]] == sorted(p.name for p in GENOTYPES.glob("*.json"))


# ----------------------------------------------------------------------------- trained weights
def _trained_tiny() -> NASDIPNet:
    torch.manual_seed(0)
    net = build_nasdip(get_genotype("nasdip-denoise").replace(channels=8, skip_channels=8))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(2):  # moves the weights and the BatchNorm running statistics away from their init
        loss = net(torch.rand(2, 32, 16, 16)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval()


def test_save_pretrained_round_trip_reproduces_outputs(tmp_path, hf_cache):
    net = _trained_tiny()
    z = torch.rand(1, 32, 24, 20)
    expected = net(z)
    folder = save_pretrained(net, tmp_path / "w", trained=True, training="a test")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    config = json.loads((folder / "config.json").read_text())
    assert config["in_channels"] == 32 and config["out_channels"] == 3 and config["trained"] is True
    assert config["library_name"] == "nasdip-zoo" and "nasdip-zoo" in config["note"]
    assert get_genotype(f"local-dir:{folder}") == net.genotype  # the config is a genotype reference too

    from safetensors.torch import load_file

    stored = load_file(str(folder / "model.safetensors"))
    bn = next(k for k in stored if k.endswith("running_mean"))
    assert torch.equal(stored[bn], net.state_dict()[bn]) and stored[bn].abs().sum() > 0

    snap = _cache_repo(hf_cache, "org/weights", {n: (folder / n).read_bytes() for n in ("config.json", "model.safetensors")})
    for ref in (folder, str(folder), f"local-dir:{folder}", "hf-hub:org/weights"):
        loaded = from_pretrained(ref)
        assert not loaded.training and loaded.genotype == net.genotype
        assert torch.equal(loaded(z), expected)
    assert snap.is_dir()


def test_from_pretrained_errors(tmp_path):
    net = _trained_tiny()
    folder = save_pretrained(net, tmp_path / "w", trained=True)
    (folder / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="no model.safetensors.*untrained DIP networks publish no weights"):
        from_pretrained(folder)
    other = save_pretrained(build_nasdip(get_genotype("nasdip-sr").replace(channels=8, skip_channels=8)), tmp_path / "o")
    shutil.copy(other / "model.safetensors", folder / "model.safetensors")
    with pytest.raises(ValueError, match="does not match the genotype in config.json"):
        from_pretrained(folder)
    with pytest.raises(FileNotFoundError, match="no config.json.*it holds genotype cards"):
        from_pretrained(GENOTYPES)
    with pytest.raises(FileNotFoundError, match="no such folder"):
        from_pretrained(tmp_path / "missing")
    cfg = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**cfg, "schema_version": 3}))
    with pytest.raises(ValueError, match="schema_version=3"):
        from_pretrained(folder)
    with pytest.raises(TypeError, match="NASDIPNet"):
        save_pretrained(torch.nn.Linear(2, 2), tmp_path / "x")


def test_push_to_hub_refuses_untrained_networks(monkeypatch, no_network):
    monkeypatch.setattr(huggingface_hub, "HfApi", _ApiMustNotBeCalled)
    net = _trained_tiny()
    with pytest.raises(ValueError, match="untrained DIP networks publish no weights.*trained=True"):
        push_to_hub(net, "org/weights")
    plan = push_to_hub(net, "org/weights", trained=True, training="CycleGAN, 2 steps", dry_run=True)
    assert [f.path_in_repo for f in plan.files] == ["README.md", "config.json", "model.safetensors"]
    assert plan.files[2].size > 4 * sum(p.numel() for p in net.parameters())  # float32 weights, and buffers


def test_push_to_hub_uploads_the_weights(online_fake_hub, tmp_path):
    net = _trained_tiny()
    plan = push_to_hub(net, "org/weights", trained=True, create_pr=True, private=True)
    (api,) = online_fake_hub.instances
    assert [c[0] for c in api.calls] == ["create_commit"]  # a pull request goes to an existing repository
    files = api.calls[0][2]
    assert plan.files and {n: _sha(d) for n, d in files.items()} == {f.path_in_repo: f.sha256 for f in plan.files}
    for name in ("config.json", "model.safetensors"):
        (tmp_path / name).write_bytes(files[name])
    z = torch.rand(1, 32, 16, 16)
    assert torch.equal(from_pretrained(tmp_path)(z), net(z))


def test_without_huggingface_hub_bare_names_work_and_hub_refs_name_the_extra(monkeypatch, tmp_path, no_network):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # `import huggingface_hub` now fails
    assert get_card("nasdip-denoise").t_star == 3500  # bare names never need the Hub client
    _write(tmp_path / "tiny.json", _tiny_card())
    assert get_card(f"local-dir:{tmp_path}").name == "tiny"
    with pytest.raises(ImportError, match=r"pip install 'nasdip-zoo\[hub\]'"):
        get_card("hf-hub:org/repo/nasdip-sr")


def test_pull_into_a_folder_offline_copies_the_cached_snapshot(hf_cache, tmp_path):
    card = json.dumps(_tiny_card()).encode()
    _cache_repo(hf_cache, "org/zoo", {"tiny.json": card, "README.md": b"# r"})
    out = hub.pull("hf-hub:org/zoo", local_dir=tmp_path / "copy")
    assert out == tmp_path / "copy" and (out / "tiny.json").read_bytes() == card and not (out / "tiny.json").is_symlink()
    assert get_card(f"local-dir:{out}/tiny").name == "tiny"


def _http_error(cls):
    httpx = pytest.importorskip("httpx2" if "httpx2" in sys.modules else "httpx")
    response = httpx.Response(404, request=httpx.Request("GET", "https://huggingface.co/api/models/org/x"))
    return cls("404", response=response)


def test_online_lookups_send_the_library_and_map_hub_errors(monkeypatch, tmp_path, no_network):
    from huggingface_hub import errors

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    calls, raising = [], {}
    card = _write(tmp_path / "snap" / "tiny.json", _tiny_card())

    def fake_download(repo_id, filename, **kwargs):
        calls.append((repo_id, filename, kwargs))
        if raising:
            raise raising["error"]
        return str(card)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    assert get_card("hf-hub:org/zoo/tiny@v1").name == "tiny"
    repo_id, filename, kwargs = calls[0]
    assert (repo_id, filename, kwargs["revision"], kwargs["local_files_only"]) == ("org/zoo", "tiny.json", "v1", False)
    assert kwargs["library_name"] == "nasdip-zoo" and kwargs["library_version"] == nasdip_zoo.__version__
    for cls, kind, pattern in [
        (errors.RepositoryNotFoundError, ValueError, "no such Hub model repository.*hf auth login.*nasdip-sr"),
        (errors.RevisionNotFoundError, ValueError, "no such revision.*nasdip-sr"),
        (errors.RemoteEntryNotFoundError, FileNotFoundError, "has no such file.*nasdip-sr"),
        (errors.HfHubHTTPError, ValueError, "the Hub answered 404.*nasdip-sr"),
    ]:
        raising["error"] = _http_error(cls)
        with pytest.raises(kind, match=pattern):
            get_card("hf-hub:org/zoo/tiny")
    raising["error"] = errors.LocalEntryNotFoundError("no connection")
    with pytest.raises(FileNotFoundError, match="not in the Hub cache .* and the Hub could not be reached"):
        get_card("hf-hub:org/zoo/tiny")


def test_the_restorer_accepts_hub_references(hf_cache, tmp_path):
    restore = pytest.importorskip("nasdip_zoo.restore", reason="DIPRestorer lands with the restore branch")
    _cache_repo(hf_cache, "org/zoo", {"tiny.json": json.dumps(_tiny_card()).encode()})
    _write(tmp_path / "tiny.json", _tiny_card())
    for ref in ("hf-hub:org/zoo/tiny", f"local-dir:{tmp_path}"):
        restorer = restore.DIPRestorer(ref, device="cpu", progress=False)
        assert restorer.card.name == "tiny" and restorer.genotype.backbone.channels == 8
    with pytest.raises(ValueError, match="write 'hf-hub:org/zoo'"):
        restore.DIPRestorer("org/zoo", device="cpu", progress=False)

"""The Hugging Face Hub: load genotype cards by reference, publish them with their model card, and
save/load/publish trained weights of networks built from a genotype.

References (accepted wherever a genotype is: ``get_card``, ``get_genotype``, ``build_nasdip``,
``DIPRestorer``, the CLI's ``--genotype``):

- ``local-dir:/path[/name]``: a card in a folder (``/name`` picks one when it holds several);
- ``hf-hub:org/repo[/name][@rev]``: the same from a Hub model repository, downloaded and cached
  by ``huggingface_hub`` (the optional extra ``hub``, imported only when a Hub call is made).

This module is imported by ``nasdip_zoo`` to register both schemes, so it must stay cheap:
``huggingface_hub`` and ``safetensors`` are imported inside the functions that use them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from ._files import read_json
from .genotype import SCHEMA_VERSION, Genotype, check_schema_version, write_json_atomic
from .network import NASDIPNet, build_nasdip, count_parameters
from .zoo import TASKS, Card, _card_from_file, list_genotypes, register_scheme

__all__ = [
    "LIBRARY_NAME",
    "PlannedFile",
    "PushPlan",
    "parse_hf_ref",
    "load_cards",
    "render_model_card",
    "push_genotypes",
    "pull",
    "save_pretrained",
    "from_pretrained",
    "push_to_hub",
    "add_parser",
]

LIBRARY_NAME = "nasdip-zoo"
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
README_NAME = "README.md"
PAPER_ARXIV = "2008.11713"

_REPO_PART = r"[A-Za-z0-9][A-Za-z0-9._-]*"
_HF_REF = re.compile(rf"(?P<repo>{_REPO_PART}/{_REPO_PART})(?:/(?P<name>{_REPO_PART}))?(?:@(?P<rev>\S+))?")


# ----------------------------------------------------------------------------- helpers
def _bundled_hint(capital: bool = False) -> str:
    return f"{'B' if capital else 'b'}undled genotypes (no download): {', '.join(list_genotypes())}"


def _version() -> str:
    from . import __version__

    return __version__


def _hf():
    """``huggingface_hub``, or an ImportError that names the extra to install."""
    try:
        import huggingface_hub
    except ImportError:
        raise ImportError(
            "the Hugging Face Hub needs the optional dependency huggingface_hub: pip install 'nasdip-zoo[hub]'"
        ) from None
    return huggingface_hub


def _offline() -> bool:
    """HF_HUB_OFFLINE as set now (huggingface_hub itself reads it once, at import)."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}:
        return True
    _hf()
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def _cache_dir() -> str | None:
    """The Hub cache as the environment says now (None: the client's own default)."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return os.path.join(os.environ["HF_HOME"], "hub")
    return None


def _client_kwargs() -> dict[str, Any]:
    return {"library_name": LIBRARY_NAME, "library_version": _version(), "cache_dir": _cache_dir()}


def parse_hf_ref(rest: str) -> tuple[str, str | None, str | None]:
    """``org/repo[/name][@rev]`` -> (repo_id, name or None, revision or None)."""
    m = _HF_REF.fullmatch(rest.strip())
    if not m:
        raise ValueError(
            f"hf-hub:{rest!r} is not a Hub reference; write hf-hub:org/repo, hf-hub:org/repo/name or "
            f"hf-hub:org/repo/name@revision. {_bundled_hint()}"
        )
    name = m.group("name")
    if name and name.endswith(".json"):
        name = name[: -len(".json")]
    return m.group("repo"), name, m.group("rev")


def _hub_call(ref: str, fn, *args: Any, **kwargs: Any) -> str:
    """Run a huggingface_hub download; turn its errors into one clear line that names the alternatives."""
    _hf()  # the ImportError that names the [hub] extra, before any other import of the client
    from huggingface_hub import constants, errors

    offline = _offline()
    try:
        return fn(*args, local_files_only=offline, **_client_kwargs(), **kwargs)
    except errors.LocalEntryNotFoundError:
        why = "HF_HUB_OFFLINE=1 is set" if offline else "the Hub could not be reached"
        raise FileNotFoundError(
            f"{ref} is not in the Hub cache ({_cache_dir() or constants.HF_HUB_CACHE}) and {why}; "
            f"fetch it with `nasdip hub pull` while online, use local-dir:/path for a folder, or a bundled name. "
            f"{_bundled_hint(capital=True)}"
        ) from None
    except errors.RepositoryNotFoundError:
        raise ValueError(
            f"{ref}: no such Hub model repository (or it is private: log in with `hf auth login`); {_bundled_hint()}"
        ) from None
    except errors.RevisionNotFoundError:
        raise ValueError(f"{ref}: the repository has no such revision (branch, tag or commit); {_bundled_hint()}") from None
    except errors.EntryNotFoundError:
        raise FileNotFoundError(f"{ref}: the repository has no such file; {_bundled_hint()}") from None
    except errors.OfflineModeIsEnabled:
        raise FileNotFoundError(f"{ref}: HF_HUB_OFFLINE=1 and not cached; {_bundled_hint()}") from None
    except errors.HfHubHTTPError as e:
        raise ValueError(f"{ref}: the Hub answered {e}; {_bundled_hint()}") from None


# ----------------------------------------------------------------------------- loading cards
def _card_files(folder: Path) -> dict[str, Path]:
    """The card files of a folder by name (config.json is a weights config, not a card)."""
    return {p.stem: p for p in sorted(folder.glob("*.json")) if p.name != CONFIG_NAME}


def _load_card_file(path: Path, ref: str) -> Card:
    try:
        return _card_from_file(path)
    except ValueError as e:
        raise ValueError(f"{ref}: {e}. {_bundled_hint()}") from None


def _card_from_folder(folder: Path, name: str | None, ref: str) -> Card:
    """The card ``name`` of ``folder`` (or its only card; or the genotype of a weights config.json)."""
    cards = _card_files(folder)
    if name is not None:
        if name in cards:
            return _load_card_file(cards[name], ref)
        if name == "config" and (folder / CONFIG_NAME).is_file():
            return _load_card_file(folder / CONFIG_NAME, ref)
        raise FileNotFoundError(
            f"{ref}: no card {name + '.json'!r} in {folder} (it has: {', '.join(cards) or 'no cards'}); {_bundled_hint()}"
        )
    if len(cards) == 1:
        return _load_card_file(next(iter(cards.values())), ref)
    if not cards and (folder / CONFIG_NAME).is_file():
        return _load_card_file(folder / CONFIG_NAME, ref)
    if not cards:
        raise FileNotFoundError(f"{ref}: {folder} holds no genotype cards (*.json); {_bundled_hint()}")
    raise ValueError(f"{ref} holds {len(cards)} cards; pick one with {ref}/<name>, one of: {', '.join(cards)}")


def _resolve_local_dir(rest: str) -> Card:
    ref = f"local-dir:{rest}"
    p = Path(rest).expanduser()
    if p.is_dir():
        return _card_from_folder(p, None, ref)
    if p.is_file():
        return _load_card_file(p, ref)
    if p.parent.is_dir() and p.name:
        return _card_from_folder(p.parent, p.name[: -len(".json")] if p.name.endswith(".json") else p.name, ref)
    raise FileNotFoundError(f"{ref}: no such folder or file; {_bundled_hint()}")


def _resolve_hf_hub(rest: str) -> Card:
    ref = f"hf-hub:{rest}"
    repo_id, name, revision = parse_hf_ref(rest)
    hf = _hf()
    if name is not None:
        path = _hub_call(ref, hf.hf_hub_download, repo_id, f"{name}.json", revision=revision)
        return _card_from_folder(Path(path).parent, name, ref)
    folder = _hub_call(ref, hf.snapshot_download, repo_id, revision=revision, allow_patterns=["*.json"])
    return _card_from_folder(Path(folder), None, ref)


register_scheme("local-dir", _resolve_local_dir)
register_scheme("hf-hub", _resolve_hf_hub)


def load_cards(folder: str | os.PathLike[str]) -> dict[str, Card]:
    """Validate and load every card of a folder; all problems are reported together, before anything else."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{str(folder)!r} is not a folder of genotype cards")
    files = _card_files(folder)
    if not files:
        raise FileNotFoundError(f"{folder} holds no genotype cards (*.json)")
    cards, problems = {}, []
    for name, path in files.items():
        try:
            card = Card.load(path)
        except (ValueError, FileNotFoundError) as e:
            problems.append(str(e))
            continue
        if card.name != name:
            problems.append(f"{path}: card name {card.name!r} must equal the file name {name!r}")
            continue
        try:
            _benchmark_rows(card)
        except ValueError as e:
            problems.append(f"{path}: {e}")
            continue
        cards[name] = card
    if problems:
        raise ValueError(f"{len(problems)} invalid card(s), nothing uploaded: " + " | ".join(problems))
    return cards


# ----------------------------------------------------------------------------- the model card
_TASK_NAMES = {"sr": "Image Super-Resolution", "denoise": "Image Denoising", "inpaint": "Image Inpainting"}
_METRIC_NAMES = {"psnr": "PSNR (dB)", "psnr_y": "PSNR on Y (dB)", "ssim": "SSIM"}


def _benchmark_rows(card: Card) -> list[dict[str, Any]]:
    """A card's measured numbers as rows for the model-index.

    ``benchmarks`` maps an id to ``{"task", "dataset", "metric", "value"}`` (optional: ``protocol``,
    ``oracle``, ``iterations``, ``source``); ``task`` defaults to the card's own task.
    """
    rows = []
    for key, entry in sorted(card.benchmarks.items()):
        if not isinstance(entry, Mapping):
            raise ValueError(f"benchmarks[{key!r}] must be an object with task, dataset, metric, value")
        missing = [k for k in ("dataset", "metric", "value") if k not in entry]
        if missing:
            raise ValueError(f"benchmarks[{key!r}] lacks {missing}; each entry needs dataset, metric and value")
        task = entry.get("task", card.task)
        if task not in TASKS:
            raise ValueError(f"benchmarks[{key!r}]: task {task!r} must be one of {list(TASKS)}")
        value = entry["value"]
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ValueError(f"benchmarks[{key!r}]: value {value!r} must be a number")
        rows.append({**entry, "id": key, "task": task, "value": value})
    return rows


def _yaml_str(s: str) -> str:
    return json.dumps(s)  # a JSON string is a valid double-quoted YAML scalar


def _model_index(cards: Iterable[Card]) -> list[str]:
    lines: list[str] = []
    for card in cards:
        rows = _benchmark_rows(card)
        if not rows:
            continue
        lines += [f"- name: {_yaml_str(card.name)}", "  results:"]
        groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for row in rows:
            groups.setdefault((row["task"], row["dataset"]), []).append(row)
        for (task, dataset), group in groups.items():
            lines += [
                "  - task:",
                "      type: image-to-image",
                f"      name: {_yaml_str(_TASK_NAMES[task])}",
                "    dataset:",
                f"      name: {_yaml_str(dataset)}",
                f"      type: {_yaml_str(dataset.lower().replace(' ', '-'))}",
                "    metrics:",
            ]
            for row in group:
                label = _METRIC_NAMES.get(row["metric"], row["metric"])
                detail = ", ".join(str(row[k]) for k in ("protocol",) if row.get(k))
                if row.get("oracle"):
                    detail = ", ".join(filter(None, [detail, "oracle: best iteration chosen with ground truth"]))
                elif row.get("iterations"):
                    detail = ", ".join(filter(None, [detail, f"at {row['iterations']} iterations"]))
                lines += [
                    f"    - type: {_yaml_str(row['metric'])}",
                    f"      value: {row['value']!r}",
                    f"      name: {_yaml_str(label + (f' ({detail})' if detail else ''))}",
                    "      verified: false",
                ]
    return lines


def _params(card: Card) -> str:
    return f"{count_parameters(build_nasdip(card.genotype, card.dip.input_channels, card.out_channels)):,}"


def render_model_card(cards: Mapping[str, Card] | Iterable[Card]) -> str:
    """MODEL_CARD.md (the Hub repository's README) from the cards: YAML metadata, then the card."""
    cards = list(cards.values()) if isinstance(cards, Mapping) else list(cards)
    cards.sort(key=lambda c: c.name)
    front = [
        "---",
        f"library_name: {LIBRARY_NAME}",
        "license: apache-2.0",
        "pipeline_tag: image-to-image",
        "tags:",
        *(f"- {t}" for t in ("deep-image-prior", "neural-architecture-search", "image-restoration",
                             "learning-free", "super-resolution", "denoising", "inpainting", "pytorch",
                             f"arxiv:{PAPER_ARXIV}")),
    ]
    index = _model_index(cards)
    if index:
        front += ["model-index:", *index]
    front.append("---")
    rows = []
    for c in cards:
        g = c.genotype
        t_star = ", ".join(f"{t} {s.t_star}" for t, s in c.settings.items())
        rows.append(f"| `{c.name}` | {c.task} | {g.cell.describe()} | {g.connections.describe(g.backbone.depth)} "
                    f"| {_params(c)} | {c.out_channels} | {t_star} |")
    settings_rows = [
        f"| `{c.name}` | {t} | {s.lr:g} | {s.reg_noise_std:.4g} | {s.t_star} | "
        f"{s.released_iterations if s.released_iterations is not None else '-'} | "
        f"{s.ema if s.ema is not None else '-'} | {s.t_star_source} |"
        for c in cards for t, s in c.settings.items()
    ]
    bench_rows = [
        f"| `{c.name}` | {r['task']} | {r['dataset']} | {r.get('protocol', '')} | {r['metric']} | {r['value']} | "
        f"{'oracle' if r.get('oracle') else 'no ground truth used to stop'} |"
        for c in cards for r in _benchmark_rows(c)
    ]
    example = next((c.name for c in cards if c.name.startswith("nasdip-")), cards[0].name if cards else "name")
    body = f"""
# NAS-DIP genotypes (nasdip-zoo)

Searched **deep image priors** from *NAS-DIP: Learning Deep Image Prior with Neural Architecture
Search* (Yun-Chun Chen, Chen Gao, Esther Robb, Jia-Bin Huang; ECCV 2020, [arXiv:{PAPER_ARXIV}](https://arxiv.org/abs/{PAPER_ARXIV})),
packaged as genotype cards by the `nasdip-zoo` Python package.

A deep image prior is an *untrained* network: restoring an image means fitting the network's output
to the degraded observation, from a fixed random input, and stopping early. NAS-DIP searched the
decoder's 2x upsampling cell and its cross-level residual connections so that the network's
structure itself is a better prior. This repository therefore holds **no weights**: each JSON file
is a genotype card (the architecture, the task it was searched for, DIP's optimisation settings,
the stopping iteration t*, provenance and the numbers measured so far). `README.md` is generated
from the cards (`nasdip hub card`), so the cards are the one source of truth; the same files ship
inside the `nasdip-zoo` wheel.

## The genotypes

| card | task | upsampling cell | cross-level connections | parameters | out channels | t* |
|---|---|---|---|---|---|---|
{chr(10).join(rows)}

Parameters are counted for a 32-channel noise input. `-cell-only` and `-connections-only` are the
paper's ablations (Table 2): the searched cell with DIP's same-level skips, and DIP's bilinear
upsampling with the searched connections. `dip-skip` is Deep Image Prior's U-Net, as a genotype.

## DIP settings and t*

| card | task | Adam lr | input noise jitter | t* | released code's iterations | output EMA | t* from |
|---|---|---|---|---|---|---|---|
{chr(10).join(settings_rows)}

**t\\* depends on the image size.** The paper chose t* on its held-out search images at full size.
It does not transfer to small crops: on 64x64 denoising crops (sigma 25, DIP settings, output EMA
0.99) the EMA PSNR peaks at 400-700 iterations, and by 1500 both DIP's U-Net and the searched
network have fitted the noise (back to 20-23 dB); on 128x128 crops the peak is at 700-950
iterations. For another image size, pick t* on held-out images of that size and pass it as the
number of iterations; never reuse the full-size value.

## Measured numbers

{chr(10).join(['| card | task | dataset | protocol | metric | value | stopping |', '|---|---|---|---|---|---|---|', *bench_rows]) if bench_rows else
"None yet: the benchmark (`nasdip bench`) writes its numbers into the cards' `benchmarks` field, and the YAML model-index is generated from them."}

## How to load

```bash
pip install "nasdip-zoo[hub]"
```

```python
from nasdip_zoo import build_nasdip, get_card

card = get_card("hf-hub:<org>/<repo>/{example}")   # or @revision; cached by huggingface_hub
net = build_nasdip(card.genotype, card.dip.input_channels, card.out_channels)
print(card.dip.t_star, card.dip.lr)
```

The same names are bundled in the wheel and load without the network: `get_card("{example}")`.
`local-dir:/path/{example}` reads a folder (for example one fetched with `nasdip hub pull <org>/<repo>
--local-dir DIR`), and every command that takes `--genotype` accepts these references.

## Licence and citation

Apache-2.0. The architectures and settings come from the authors' release
(YunChunChen/NAS-DIP-pytorch) and the paper; `dip-skip` from Deep Image Prior
(DmitryUlyanov/deep-image-prior).

```bibtex
@inproceedings{{chen2020nasdip,
  title     = {{NAS-DIP: Learning Deep Image Prior with Neural Architecture Search}},
  author    = {{Chen, Yun-Chun and Gao, Chen and Robb, Esther and Huang, Jia-Bin}},
  booktitle = {{European Conference on Computer Vision (ECCV)}},
  year      = {{2020}}
}}
```
"""
    return "\n".join(front) + "\n" + body


# ----------------------------------------------------------------------------- publishing
@dataclass(frozen=True)
class PlannedFile:
    """One file of an upload: its path in the repository, size in bytes and SHA-256."""

    path_in_repo: str
    size: int
    sha256: str


@dataclass(frozen=True)
class PushPlan:
    """Exactly what a push uploads (or, after a real push, uploaded) to which repository."""

    repo_id: str
    files: tuple[PlannedFile, ...]
    revision: str | None = None
    create_pr: bool = False
    dry_run: bool = True
    commit_url: str | None = None

    def format(self) -> str:
        where = f"{self.repo_id}@{self.revision or 'main'}" + (" (as a pull request)" if self.create_pr else "")
        head = f"{'would upload' if self.dry_run else 'uploaded'} {len(self.files)} files to {where}:"
        width = max((len(f.path_in_repo) for f in self.files), default=0)
        lines = [f"  {f.path_in_repo.ljust(width)}  {f.size:>9} bytes  sha256 {f.sha256}" for f in self.files]
        tail = [f"commit: {self.commit_url}"] if self.commit_url else []
        return "\n".join([head, *lines, *tail])


def _plan_folder(staged: Path) -> tuple[PlannedFile, ...]:
    files = []
    for p in sorted(q for q in staged.rglob("*") if q.is_file()):
        data = p.read_bytes()
        files.append(PlannedFile(p.relative_to(staged).as_posix(), len(data), hashlib.sha256(data).hexdigest()))
    return tuple(files)


def _upload(staged: Path, plan: PushPlan, token: str | None, commit_message: str, private: bool | None = None) -> PushPlan:
    """Send the staged files as one commit (the files of ``plan``, checked byte for byte)."""
    hf = _hf()
    if _offline():
        raise ValueError("cannot push while HF_HUB_OFFLINE=1 is set; unset it, or use --dry-run to see the plan")
    api = hf.HfApi(token=token, library_name=LIBRARY_NAME, library_version=_version())
    if not plan.create_pr:
        api.create_repo(plan.repo_id, private=private, exist_ok=True)
        if plan.revision:
            api.create_branch(plan.repo_id, branch=plan.revision, exist_ok=True)
    ops = [hf.CommitOperationAdd(path_in_repo=f.path_in_repo, path_or_fileobj=str(staged / f.path_in_repo))
           for f in plan.files]
    info = api.create_commit(plan.repo_id, ops, commit_message=commit_message, revision=plan.revision,
                             create_pr=plan.create_pr)
    url = getattr(info, "pr_url", None) or getattr(info, "commit_url", None)
    return PushPlan(plan.repo_id, plan.files, plan.revision, plan.create_pr, dry_run=False, commit_url=url)


def _check_repo_id(repo_id: str) -> str:
    if repo_id.startswith("hf-hub:"):
        repo_id = repo_id[len("hf-hub:"):]
    if not re.fullmatch(f"{_REPO_PART}/{_REPO_PART}", repo_id or ""):
        raise ValueError(f"repo id {repo_id!r} is not of the form org/name (e.g. my-org/nasdip-genotypes)")
    return repo_id


def push_genotypes(
    folder: str | os.PathLike[str],
    repo_id: str,
    revision: str | None = None,
    create_pr: bool = False,
    dry_run: bool = False,
    token: str | None = None,
    commit_message: str | None = None,
) -> PushPlan:
    """Publish a folder of cards as a Hub model repository: the cards (byte for byte) + README.md.

    Every card is validated first (nothing is uploaded if one is bad); the README is rendered from
    the cards (:func:`render_model_card`). ``dry_run`` returns the plan and touches no network.
    """
    repo_id = _check_repo_id(repo_id)
    folder = Path(folder)
    cards = load_cards(folder)
    with tempfile.TemporaryDirectory(prefix="nasdip-push-") as tmp:
        staged = Path(tmp)
        for name in cards:
            shutil.copyfile(folder / f"{name}.json", staged / f"{name}.json")
        (staged / README_NAME).write_text(render_model_card(cards), encoding="utf-8")
        plan = PushPlan(repo_id, _plan_folder(staged), revision, create_pr, dry_run=True)
        if dry_run:
            return plan
        return _upload(staged, plan, token, commit_message or f"nasdip-zoo {_version()}: {len(cards)} genotype cards")


def pull(repo_id: str, revision: str | None = None, local_dir: str | os.PathLike[str] | None = None) -> Path:
    """Fetch a whole Hub repository into the Hub cache (or ``local_dir``); returns the folder."""
    ref = repo_id if repo_id.startswith("hf-hub:") else f"hf-hub:{repo_id}"
    repo_id = _check_repo_id(repo_id)
    hf = _hf()
    if local_dir is not None and not _offline():
        return Path(_hub_call(ref, hf.snapshot_download, repo_id, revision=revision, local_dir=str(local_dir)))
    cached = Path(_hub_call(ref, hf.snapshot_download, repo_id, revision=revision))
    if local_dir is None:
        return cached
    # offline, the client reads only local_dir itself: copy the cached snapshot there instead
    out = Path(local_dir)
    for src in sorted(p for p in cached.rglob("*") if p.is_file()):
        dst = out / src.relative_to(cached)
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(f".{dst.name}.tmp-{os.getpid()}")
        shutil.copyfile(src, tmp)  # follows the cache's symlinks into blobs/
        os.replace(tmp, dst)
    return out


# ----------------------------------------------------------------------------- trained weights
def _network_config(model: NASDIPNet, trained: bool, training: str | None) -> dict[str, Any]:
    genotype = {k: v for k, v in model.genotype.to_dict().items() if k != "schema_version"}
    return {
        "schema_version": SCHEMA_VERSION,
        "library_name": LIBRARY_NAME,
        "library_version": _version(),
        "note": "A nasdip-zoo NASDIPNet (NAS-DIP genotype). Load it with nasdip_zoo.from_pretrained(...); "
                "get_genotype(...) reads the architecture alone.",
        "architecture": "NASDIPNet",
        "in_channels": model.in_channels,
        "out_channels": model.out_channels,
        "trained": bool(trained),
        "training": training or "",
        "genotype": genotype,
    }


def save_pretrained(
    model: NASDIPNet, save_directory: str | os.PathLike[str], *, trained: bool = False, training: str | None = None
) -> Path:
    """Write ``config.json`` (genotype + in/out channels) and ``model.safetensors`` (parameters and buffers).

    ``trained`` records whether the weights were trained on data (a DIP fit to one image is not).
    Each file is written to a temporary name and renamed into place.
    """
    if not isinstance(model, NASDIPNet):
        raise TypeError(
            f"save_pretrained saves networks built from a genotype (NASDIPNet); got {type(model).__name__}"
        )
    from safetensors.torch import save_file

    out = Path(save_directory)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    tmp = out / f".{WEIGHTS_NAME}.tmp-{os.getpid()}"
    try:
        save_file(tensors, str(tmp), metadata={"format": "pt", "library_name": LIBRARY_NAME})
        os.replace(tmp, out / WEIGHTS_NAME)
    finally:
        if tmp.exists():
            tmp.unlink()
    write_json_atomic(out / CONFIG_NAME, _network_config(model, trained, training))
    return out


def _pretrained_folder(ref: str | os.PathLike[str]) -> Path:
    text = os.fspath(ref)
    if text.startswith("local-dir:"):
        folder = Path(text[len("local-dir:"):]).expanduser()
    elif text.startswith("hf-hub:"):
        repo_id, sub, revision = parse_hf_ref(text[len("hf-hub:"):])
        prefix = f"{sub}/" if sub else ""
        snapshot = _hub_call(text, _hf().snapshot_download, repo_id, revision=revision,
                             allow_patterns=[prefix + CONFIG_NAME, prefix + WEIGHTS_NAME])
        folder = Path(snapshot) / (sub or "")
    else:
        folder = Path(text).expanduser()
        if not folder.exists() and _HF_REF.fullmatch(text):
            raise ValueError(
                f"{text!r} is neither a folder nor a bundled name; for a Hugging Face Hub repository write "
                f"'hf-hub:{text}' (a bare name with a slash is never downloaded)"
            )
    if not folder.is_dir():
        raise FileNotFoundError(f"{text!r}: no such folder (save_pretrained writes config.json + model.safetensors)")
    return folder


def from_pretrained(ref: str | os.PathLike[str], *, device: str = "cpu") -> NASDIPNet:
    """Load a network saved by :func:`save_pretrained`: a folder, ``local-dir:``, or ``hf-hub:org/repo[/sub][@rev]``.

    Never unpickles (JSON + safetensors). Returns the network in eval mode.
    """
    folder = _pretrained_folder(ref)
    config_path, weights_path = folder / CONFIG_NAME, folder / WEIGHTS_NAME
    if not config_path.is_file():
        hint = " (it holds genotype cards: use get_card/build_nasdip('local-dir:...'))" if _card_files(folder) else ""
        raise FileNotFoundError(f"{ref}: no {CONFIG_NAME} in {folder}{hint}")
    config = read_json(config_path)
    if not isinstance(config, Mapping) or "genotype" not in config:
        raise ValueError(f"{config_path}: not a nasdip-zoo config (it needs 'genotype', 'in_channels', 'out_channels')")
    check_schema_version(config)
    model = NASDIPNet(Genotype.from_dict(config["genotype"]), int(config.get("in_channels", 32)),
                      int(config.get("out_channels", 3)))
    if not weights_path.is_file():
        raise FileNotFoundError(
            f"{ref}: no {WEIGHTS_NAME} in {folder}; untrained DIP networks publish no weights: "
            f"build_nasdip(get_genotype({str(ref)!r})) gives the untrained network"
        )
    from safetensors.torch import load_file

    state = load_file(str(weights_path), device=device)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ValueError(f"{weights_path} does not match the genotype in {CONFIG_NAME}: {e}") from None
    return model.to(device).eval()


def _weights_card(config: Mapping[str, Any]) -> str:
    g = Genotype.from_dict(config["genotype"])
    return "\n".join([
        "---",
        f"library_name: {LIBRARY_NAME}",
        "license: apache-2.0",
        "tags:",
        "- nas-dip",
        "- pytorch",
        f"- arxiv:{PAPER_ARXIV}",
        "---",
        "",
        "# A trained network built from a NAS-DIP genotype",
        "",
        f"Architecture: {g.describe()}; {config['in_channels']} input and {config['out_channels']} output channels.",
        f"Training: {config.get('training') or 'not described'}.",
        "",
        "```python",
        "from nasdip_zoo import from_pretrained",
        'net = from_pretrained("hf-hub:<org>/<repo>")',
        "```",
        "",
    ])


def push_to_hub(
    model: NASDIPNet,
    repo_id: str,
    *,
    trained: bool = False,
    training: str | None = None,
    revision: str | None = None,
    create_pr: bool = False,
    private: bool | None = None,
    dry_run: bool = False,
    token: str | None = None,
    commit_message: str | None = None,
) -> PushPlan:
    """Publish a trained network: config.json + model.safetensors + a README.

    A deep image prior is fit to one image and its weights are worth nothing to anyone else, so a
    push needs ``trained=True`` (weights trained on data, e.g. a CycleGAN generator).
    """
    if not trained:
        raise ValueError(
            "untrained DIP networks publish no weights (they are fit to one image); publish the genotype "
            "with push_genotypes / `nasdip hub push`, or pass trained=True if this network was trained on data"
        )
    repo_id = _check_repo_id(repo_id)
    with tempfile.TemporaryDirectory(prefix="nasdip-push-") as tmp:
        staged = Path(tmp)
        save_pretrained(model, staged, trained=True, training=training)
        config = json.loads((staged / CONFIG_NAME).read_text(encoding="utf-8"))
        (staged / README_NAME).write_text(_weights_card(config), encoding="utf-8")
        plan = PushPlan(repo_id, _plan_folder(staged), revision, create_pr, dry_run=True)
        if dry_run:
            return plan
        return _upload(staged, plan, token, commit_message or f"nasdip-zoo {_version()}: trained network", private)


# ----------------------------------------------------------------------------- the command line
def _cmd_push(args: argparse.Namespace) -> int:
    plan = push_genotypes(args.folder, args.repo_id, revision=args.revision, create_pr=args.create_pr,
                          dry_run=args.dry_run)
    print(plan.format())
    return 0


def _cmd_pull(args: argparse.Namespace) -> int:
    folder = pull(args.repo_id, revision=args.revision, local_dir=args.local_dir)
    cards = _card_files(folder)
    print(folder)
    ref = f"local-dir:{folder}" if args.local_dir else f"hf-hub:{_check_repo_id(args.repo_id)}"
    for name in cards:
        card = _load_card_file(cards[name], f"{ref}/{name}")
        print(f"  {ref}/{name}  ({card.task}, t* {', '.join(f'{t} {s.t_star}' for t, s in card.settings.items())})")
    if (folder / CONFIG_NAME).is_file():
        print(f"  weights: from_pretrained({(ref if args.local_dir else f'hf-hub:{args.repo_id}')!r})")
    return 0


def _cmd_card(args: argparse.Namespace) -> int:
    text = render_model_card(load_cards(args.folder))
    if args.check:
        current = Path(args.output).read_text(encoding="utf-8") if Path(args.output).is_file() else ""
        if current != text:
            raise ValueError(f"{args.output} is not the rendering of {args.folder}; run `nasdip hub card {args.folder} -o {args.output}`")
        print(f"{args.output} is up to date")
        return 0
    out = Path(args.output)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, out)
    print(f"wrote {out}")
    return 0


def add_parser(subparsers: Any) -> None:
    """`nasdip hub push|pull|card`."""
    hub = subparsers.add_parser("hub", help="publish genotype cards to the Hugging Face Hub and fetch them")
    sub = hub.add_subparsers(dest="hub_command", required=True)
    p = sub.add_parser("push", help="validate a folder of cards, render its README and upload both")
    p.add_argument("folder", help="folder of genotype cards (*.json), e.g. genotypes")
    p.add_argument("--repo-id", required=True, help="the Hub model repository, org/name")
    p.add_argument("--revision", help="branch to commit to (created if missing; default main)")
    p.add_argument("--create-pr", action="store_true", help="open a pull request instead of committing")
    p.add_argument("--dry-run", action="store_true", help="print exactly what would be uploaded; no network")
    p.set_defaults(func=_cmd_push)
    p = sub.add_parser("pull", help="fetch a Hub repository into the Hub cache or a folder")
    p.add_argument("repo_id", help="org/name (or hf-hub:org/name)")
    p.add_argument("--revision", help="branch, tag or commit")
    p.add_argument("--local-dir", help="copy the files into this folder (then load them as local-dir:DIR/name)")
    p.set_defaults(func=_cmd_pull)
    p = sub.add_parser("card", help="render MODEL_CARD.md (the Hub README) from a folder of cards")
    p.add_argument("folder", nargs="?", default="genotypes", help="folder of genotype cards (default genotypes)")
    p.add_argument("-o", "--output", default="MODEL_CARD.md", help="where to write it (default MODEL_CARD.md)")
    p.add_argument("--check", action="store_true", help="only check that the file equals the rendering")
    p.set_defaults(func=_cmd_card)

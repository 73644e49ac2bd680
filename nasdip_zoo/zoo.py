"""The registry: named genotype cards (architecture + DIP settings + t* + provenance), pure data.

Cards are the JSON files of the top-level ``genotypes/`` folder, shipped inside the wheel as
``nasdip_zoo/genotypes``. A reference is a bare zoo name (``nasdip-denoise``), a path to a JSON
file, or a scheme registered by another module (``local-dir:``, ``hf-hub:``; see ``hub``).
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Mapping

from ._files import read_json
from .genotype import SCHEMA_VERSION, Genotype, check_schema_version, write_json_atomic

__all__ = [
    "TASKS",
    "DIPSettings",
    "Card",
    "list_genotypes",
    "get_card",
    "get_genotype",
    "register_scheme",
    "bundled_cards_dir",
]

TASKS: tuple[str, ...] = ("sr", "denoise", "inpaint")


@dataclass(frozen=True)
class DIPSettings:
    """How DIP optimises one task: Adam lr, input-noise jitter, output EMA and the stopping iteration t*."""

    lr: float
    reg_noise_std: float
    t_star: int
    released_iterations: int | None = None
    ema: float | None = None
    input_channels: int = 32
    input_scale: float = 0.1
    t_star_source: str = "paper"

    def __post_init__(self) -> None:
        if not (isinstance(self.lr, (int, float)) and self.lr > 0):
            raise ValueError(f"settings.lr={self.lr!r} must be a positive number")
        if not (isinstance(self.reg_noise_std, (int, float)) and self.reg_noise_std >= 0):
            raise ValueError(f"settings.reg_noise_std={self.reg_noise_std!r} must be a number >= 0")
        if not (isinstance(self.t_star, int) and self.t_star >= 1):
            raise ValueError(f"settings.t_star={self.t_star!r} must be a positive integer")
        if self.ema is not None and not (isinstance(self.ema, (int, float)) and 0 <= self.ema < 1):
            raise ValueError(f"settings.ema={self.ema!r} must be null or a number in [0, 1)")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Card:
    """A published genotype: the architecture, the task(s) it was searched for and how to run it."""

    name: str
    task: str
    genotype: Genotype
    settings: Mapping[str, DIPSettings]
    out_channels: int = 3
    description: str = ""
    provenance: Mapping[str, Any] = field(default_factory=dict)
    benchmarks: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.task not in TASKS + ("any",):
            raise ValueError(f"card {self.name!r}: task={self.task!r} is not one of {list(TASKS) + ['any']}")
        if not self.settings:
            raise ValueError(f"card {self.name!r}: 'settings' needs DIP settings for at least one task")
        for t in self.settings:
            if t not in TASKS:
                raise ValueError(f"card {self.name!r}: settings for unknown task {t!r}; tasks are {list(TASKS)}")

    @property
    def dip(self) -> DIPSettings:
        """The DIP settings of the card's own task (for a multi-task card: denoising, else the first)."""
        return self.dip_for(None)

    @property
    def t_star(self) -> int:
        return self.dip.t_star

    def dip_for(self, task: str | None) -> DIPSettings:
        """The DIP settings for ``task`` (None: the card's own task)."""
        if task is None:
            task = self.task if self.task in self.settings else ("denoise" if "denoise" in self.settings else next(iter(self.settings)))
        if task not in self.settings:
            raise ValueError(
                f"card {self.name!r} has no DIP settings for task {task!r}; it has {sorted(self.settings)}. "
                "Pass iterations/lr/reg_noise_std explicitly or pick a card of that task"
            )
        return self.settings[task]

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "name": self.name,
            "task": self.task,
            "description": self.description,
            "out_channels": self.out_channels,
            "model_index": self.genotype.model_index(),
            "genotype": {k: v for k, v in self.genotype.to_dict().items() if k != "schema_version"},
            "settings": {t: s.to_dict() for t, s in self.settings.items()},
            "provenance": dict(self.provenance),
            "benchmarks": dict(self.benchmarks),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "<dict>") -> "Card":
        if not isinstance(data, Mapping):
            raise ValueError(f"{source}: a card must be a JSON object")
        check_schema_version(data)
        missing = [k for k in ("name", "task", "genotype", "settings") if k not in data]
        if missing:
            raise ValueError(f"{source}: the card lacks {missing}; a card needs name, task, genotype and settings")
        allowed = {"schema_version", "name", "task", "description", "out_channels", "model_index",
                   "genotype", "settings", "provenance", "benchmarks"}
        unknown = set(data) - allowed
        if unknown:
            raise ValueError(f"{source}: unknown card keys {sorted(unknown)}; allowed: {sorted(allowed)}")
        try:
            settings = {t: DIPSettings(**s) for t, s in dict(data["settings"]).items()}
        except TypeError as e:
            raise ValueError(f"{source}: bad settings: {e}") from None
        genotype = Genotype.from_dict(data["genotype"])
        mi = data.get("model_index")
        if mi is not None and mi != genotype.model_index():
            raise ValueError(
                f"{source}: model_index {mi} does not match the cell {genotype.cell.describe()!r} "
                f"(which is model_index {genotype.model_index()}); fix one of them"
            )
        return cls(
            name=data["name"],
            task=data["task"],
            genotype=genotype,
            settings=settings,
            out_channels=int(data.get("out_channels", 3)),
            description=data.get("description", ""),
            provenance=data.get("provenance", {}),
            benchmarks=data.get("benchmarks", {}),
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "Card":
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"no card at {str(p)!r}")
        return cls.from_dict(read_json(p), source=str(p))

    def save(self, path: str | os.PathLike[str]) -> Path:
        return write_json_atomic(path, self.to_dict())


# ----------------------------------------------------------------------------- the registry
def bundled_cards_dir() -> Path:
    """The folder of bundled cards: inside the installed wheel, else the repository's genotypes/."""
    inside = Path(__file__).resolve().parent / "genotypes"
    if inside.is_dir():
        return inside
    return Path(__file__).resolve().parent.parent / "genotypes"


@lru_cache(maxsize=1)
def _bundled() -> dict[str, Card]:
    cards = {}
    for p in sorted(bundled_cards_dir().glob("*.json")):
        card = Card.load(p)
        if card.name != p.stem:
            raise ValueError(f"{p}: card name {card.name!r} must equal the file name {p.stem!r}")
        cards[card.name] = card
    return cards


def list_genotypes(task: str | None = None) -> list[str]:
    """Names of the bundled genotype cards, optionally only those for ``task``."""
    return [n for n, c in _bundled().items() if task is None or c.task == task or task in c.settings]


_SCHEMES: dict[str, Callable[[str], Card]] = {}
_REPO_LIKE = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*(/[\w.-]+)?(@\S+)?")  # org/repo[/name][@rev]


def register_scheme(prefix: str, resolver: Callable[[str], Card]) -> None:
    """Let a higher layer resolve references like ``hf-hub:org/repo`` (called with the rest)."""
    _SCHEMES[prefix] = resolver


def get_card(ref: str | os.PathLike[str] | Card) -> Card:
    """Resolve a reference (zoo name, JSON path, or a registered scheme) to its card."""
    if isinstance(ref, Card):
        return ref
    text = os.fspath(ref)
    for prefix, resolver in _SCHEMES.items():
        if text.startswith(prefix + ":"):
            return resolver(text[len(prefix) + 1 :])
    bundled = _bundled()
    if text in bundled:
        return bundled[text]
    p = Path(text)
    if p.suffix == ".json" or os.sep in text or "/" in text:
        if p.is_file():
            try:
                return _card_from_file(p)
            except ValueError as e:
                raise ValueError(f"{e}. Bundled genotypes: {', '.join(bundled)}") from None
        if p.is_dir():
            raise ValueError(f"genotype {text!r} is a folder; load a card from it as 'local-dir:{text}'")
        if p.suffix != ".json" and _REPO_LIKE.fullmatch(text):
            raise ValueError(
                f"genotype {text!r} is not a bundled name or a file; a bare name with a slash is never "
                f"downloaded: for a Hugging Face Hub repository write 'hf-hub:{text}'. "
                f"Bundled genotypes: {', '.join(bundled)}"
            )
        raise ValueError(
            f"genotype {text!r}: no such file (a bare name is looked up in the zoo; bundled: "
            f"{', '.join(bundled)}; a path must point to a JSON card or genotype)"
        )
    raise ValueError(f"unknown genotype {text!r}; bundled genotypes: {', '.join(bundled)}")


def _card_from_file(p: Path) -> Card:
    """A card file, or a bare genotype JSON (wrapped in a card with no task settings of its own)."""
    data = read_json(p)
    if isinstance(data, Mapping) and "settings" in data:
        return Card.from_dict(data, source=str(p))
    genotype = Genotype.from_dict(data)
    base = _bundled()["dip-skip"]
    return Card(name=p.stem, task="any", genotype=genotype, settings=base.settings,
                description=f"genotype from {p}", provenance={"file": str(p)})


def get_genotype(ref: str | os.PathLike[str] | Genotype | Card) -> Genotype:
    """The architecture of a zoo name, card, JSON path or registered reference."""
    if isinstance(ref, Genotype):
        return ref
    return get_card(ref).genotype

"""A synthetic multimodal corpus the code draws: where fine-tuning can visibly succeed or fail.

Concepts are coloured shapes at a position ("a red circle on the left") and coloured rendered
words ("the word 'cat' in blue"). Each concept has an image item (drawn with random jitter), a
caption item (text, phrased differently from the query) and a text-only *note* item that shares
the concept's words, the trap a text-biased model falls into. Pairs: caption query → image,
image query → caption item, note question → note. Held-out concepts are unseen combinations of
seen attributes, so the split tests composition, not memorised pictures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mmrag.train.data import Item, Pair, Query

COLOURS = {"red": (220, 30, 30), "green": (30, 170, 60), "blue": (40, 70, 220), "yellow": (235, 200, 20),
           "purple": (140, 50, 170), "orange": (245, 130, 20), "black": (20, 20, 20), "cyan": (20, 190, 200)}
SHAPES = ("circle", "square", "triangle", "cross", "ring", "bar")
POSITIONS = {"left": (0.27, 0.5), "right": (0.73, 0.5), "top": (0.5, 0.27), "bottom": (0.5, 0.73)}
WORDS = ("cat", "sun", "map", "key", "box", "pen", "cup", "owl", "fig", "jam", "zip", "ice")


@dataclass
class Concept:
    kind: str  # shape | word
    colour: str
    shape: str = ""
    position: str = ""
    word: str = ""

    @property
    def key(self) -> str:
        return f"{self.kind}-{self.colour}-{self.shape or self.word}-{self.position}".rstrip("-")

    def query(self) -> str:
        if self.kind == "shape":
            return f"a picture of a {self.colour} {self.shape} on the {self.position}"
        return f"a picture of the word {self.word} written in {self.colour}"

    def caption(self) -> str:
        if self.kind == "shape":
            return f"{self.shape}, coloured {self.colour}, placed {self.position}"
        return f"text {self.word}, ink {self.colour}"

    def note(self) -> str:
        if self.kind == "shape":
            return f"notes: the {self.colour} {self.shape} on the {self.position} is mentioned in the report"
        return f"notes: the word {self.word} in {self.colour} is discussed in the report"

    def note_query(self) -> str:
        if self.kind == "shape":
            return f"what do the notes say about the {self.colour} {self.shape} on the {self.position}"
        return f"what do the notes say about the word {self.word} in {self.colour}"


def draw(c: Concept, rng: np.random.Generator, size: int = 40) -> Any:
    """Render a concept with random jitter in position, size, and background tint."""
    from PIL import Image, ImageDraw, ImageFont

    bg = tuple(int(v) for v in 235 + rng.integers(-15, 16, size=3))
    im = Image.new("RGB", (size, size), bg)
    d = ImageDraw.Draw(im)
    col = tuple(int(np.clip(v + rng.integers(-20, 21), 0, 255)) for v in COLOURS[c.colour])
    if c.kind == "word":
        font = ImageFont.load_default(size=int(size * rng.uniform(0.28, 0.36)))
        w = d.textlength(c.word, font=font)
        x = (size - w) / 2 + rng.uniform(-4, 4)
        y = size * 0.32 + rng.uniform(-6, 6)
        d.text((x, y), c.word, fill=col, font=font)
        return im
    cx, cy = (v * size + rng.uniform(-3, 3) for v in POSITIONS[c.position])
    r = size * rng.uniform(0.14, 0.2)
    box = (cx - r, cy - r, cx + r, cy + r)
    if c.shape == "circle":
        d.ellipse(box, fill=col)
    elif c.shape == "square":
        d.rectangle(box, fill=col)
    elif c.shape == "triangle":
        d.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=col)
    elif c.shape == "cross":
        t = r / 3
        d.rectangle((cx - r, cy - t, cx + r, cy + t), fill=col)
        d.rectangle((cx - t, cy - r, cx + t, cy + r), fill=col)
    elif c.shape == "ring":
        d.ellipse(box, outline=col, width=max(2, int(r / 3)))
    else:  # bar
        d.rectangle((cx - r, cy - r / 4, cx + r, cy + r / 4), fill=col)
    return im


def concepts(n_colours: int = len(COLOURS), n_words: int = len(WORDS)) -> list[Concept]:
    colours = list(COLOURS)[:n_colours]
    out = [Concept("shape", col, shape=s, position=p) for s in SHAPES for col in colours for p in POSITIONS]
    out += [Concept("word", col, word=w) for w in WORDS[:n_words] for col in colours]
    return out


@dataclass
class Split:
    items: list[Item] = field(default_factory=list)
    pairs: list[Pair] = field(default_factory=list)
    # evaluation views: text→image and image→text queries with their positives
    t2i: list[tuple[Query, str]] = field(default_factory=list)
    i2t: list[tuple[Query, str, str]] = field(default_factory=list)  # (query, positive, own item id)


def make_corpus(seed: int = 0, heldout: float = 0.25, renderings: int = 1, size: int = 40,
                n_colours: int = 6, n_words: int = 8) -> tuple[Split, Split]:
    """(train, test) splits over disjoint concepts; ``renderings`` drawn images per training concept."""
    rng = np.random.default_rng(seed)
    cs = concepts(n_colours, n_words)
    order = rng.permutation(len(cs))
    n_test = int(len(cs) * heldout)
    test_c = [cs[i] for i in order[:n_test]]
    train_c = [cs[i] for i in order[n_test:]]
    return _split(train_c, renderings, rng, size), _split(test_c, 1, rng, size)


def _split(cs: list[Concept], renderings: int, rng: np.random.Generator, size: int) -> Split:
    s = Split()
    for c in cs:
        cap, note = Item(f"{c.key}/caption", text=c.caption()), Item(f"{c.key}/note", text=c.note())
        s.items += [cap, note]
        s.pairs.append(Pair(Query(text=c.note_query()), note.id))
        for r in range(renderings):
            img = Item(f"{c.key}/image{r}", image=draw(c, rng, size))
            s.items.append(img)
            s.pairs.append(Pair(Query(text=c.query()), img.id))
            s.pairs.append(Pair(Query(image=img.image), cap.id))
            s.t2i.append((Query(text=c.query()), img.id))
            s.i2t.append((Query(image=img.image), cap.id, img.id))
    return s

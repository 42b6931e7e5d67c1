"""What the pretrained ImageNet classifier already knows about dog breeds.

torchvision's ImageNet-1k weights end in a 1000-way classifier, and 118 of its categories are
dog breeds (indices 151-268, the range the Udacity dog project's detector used). A new head
whose rows start from those categories' rows begins where the pretrained network already is
(on the shared Stanford sample it is right 83% of the time before any training), instead of
from random numbers that forty photos per breed cannot train back to that level.

Breed classes are matched to categories by name: the folder's label with case, spaces,
underscores and hyphens ignored ('n02085620-Chihuahua', '048.Chihuahua', 'chihuahua' all
match 'Chihuahua'), then through SYNONYMS for the names that the Udacity dogImages set (the
AKC's names) spells differently from WordNet. Only true synonyms are listed: a breed that
ImageNet lacks (Dachshund, Bulldog, Greyhound, Akita, ...) stays unmatched rather than being
mapped to a look-alike, and its row is learnt from its photos (models.init_head).
"""

from __future__ import annotations

import re

from torchvision import models as tv_models

from .classes import BreedClass, label_from_folder

NUM_CATEGORIES = 1000
# ImageNet-1k's dog breeds, Chihuahua (151) to Mexican hairless (268): wolves, foxes and the
# wild dogs that follow (dingo, dhole, African hunting dog) are not pets in a photo.
DOG_CATEGORIES = range(151, 269)

# Normalised dogImages name -> torchvision's ImageNet category name(s) for the same breed.
# Several names: the breed covers several ImageNet categories (their rows are averaged).
SYNONYMS: dict[str, tuple[str, ...]] = {
    "airedaleterrier": ("Airedale",),
    "alaskanmalamute": ("malamute",),
    "bassethound": ("basset",),
    "belgianmalinois": ("malinois",),
    "belgiansheepdog": ("groenendael",),  # the AKC's Belgian Sheepdog is the Groenendael
    "bluetickcoonhound": ("bluetick",),
    "bostonterrier": ("Boston bull",),
    "brittany": ("Brittany spaniel",),
    "brusselsgriffon": ("Brabancon griffon",),  # the smooth Brussels griffon
    "cairnterrier": ("cairn",),
    "cardiganwelshcorgi": ("Cardigan",),
    "chowchow": ("chow",),
    "clumberspaniel": ("clumber",),
    "dandiedinmontterrier": ("Dandie Dinmont",),
    "dobermanpinscher": ("Doberman",),
    "englishcockerspaniel": ("cocker spaniel",),  # WordNet: "cocker spaniel, English cocker spaniel"
    "englishspringerspaniel": ("English springer",),
    "entlebuchermountaindog": ("EntleBucher",),
    "germanshepherddog": ("German shepherd",),
    "japanesechin": ("Japanese spaniel",),
    "leonberger": ("Leonberg",),
    "lhasaapso": ("Lhasa",),
    "maltese": ("Maltese dog",),
    "pekingese": ("Pekinese",),
    "pembrokewelshcorgi": ("Pembroke",),
    "poodle": ("toy poodle", "miniature poodle", "standard poodle"),
    "xoloitzcuintli": ("Mexican hairless",),
}


def normalize(name: str) -> str:
    """'n02096585-Boston_bull' -> 'bostonbull'; 'German short-haired pointer' -> 'germanshorthairedpointer'."""
    name = name.strip()
    return re.sub(r"[^a-z0-9]", "", label_from_folder(name).lower()) if name else ""


def categories(arch: str = "mobilenet_v2") -> list[str]:
    """torchvision's ImageNet-1k category names, in the order of a 1000-way classifier's rows.
    Read from the weights' metadata, which ships with torchvision (no download)."""
    return list(tv_models.get_model_weights(arch).DEFAULT.meta["categories"])


def match(names: list[str], category_names: list[str]) -> list[tuple[int, ...]]:
    """For each breed name (a label or a folder name), the indices of the categories that
    are that breed: () when the pretrained classifier does not know it."""
    by_name: dict[str, int] = {}
    for index, category in enumerate(category_names):
        by_name.setdefault(normalize(category), index)  # ImageNet has two 'crane's; no dog repeats
    out = []
    for name in names:
        key = normalize(name)
        wanted = SYNONYMS.get(key) or ((category_names[by_name[key]],) if key in by_name else ())
        out.append(tuple(by_name[normalize(c)] for c in wanted if normalize(c) in by_name))
    return out


def match_classes(classes: list[BreedClass], category_names: list[str]) -> list[tuple[int, ...]]:
    """match() on each class's folder name ('043.Boston_terrier'), or on its label when the
    folder does not match (a folder named by ingest after a label with odd characters)."""
    by_folder = match([c.folder for c in classes], category_names)
    by_label = match([c.label for c in classes], category_names)
    return [folder or label for folder, label in zip(by_folder, by_label)]

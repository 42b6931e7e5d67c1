"""Human-readable breed names from the folder names datasets use.

"001.Affenpinscher" -> "Affenpinscher"        (Udacity dogImages: NNN.Breed_Name)
"n02085620-Chihuahua" -> "Chihuahua"          (Stanford Dogs: WordNet id - breed)
"n02088364-beagle" -> "Beagle"
"Boston_bull" -> "Boston bull"                (plain class folders)
"""

from __future__ import annotations

import re

_DOGIMAGES = re.compile(r"^\d+\.(?P<name>.+)$")
_STANFORD = re.compile(r"^n\d{8}-(?P<name>.+)$")


def is_dogimages_folder(folder: str) -> bool:
    return bool(_DOGIMAGES.match(folder))


def is_stanford_folder(folder: str) -> bool:
    return bool(_STANFORD.match(folder))


def label_for(folder: str) -> str:
    """The breed name a person would write for this class folder."""
    match = _DOGIMAGES.match(folder) or _STANFORD.match(folder)
    name = match.group("name") if match else folder
    name = " ".join(name.replace("_", " ").split())
    if not name:
        return folder
    # Only the first letter: "German_shepherd_dog" keeps its capital, "beagle" gains one.
    return name[0].upper() + name[1:]


def label_key(label: str) -> str:
    """What makes two labels the same breed to a person: case, spacing and punctuation aside
    ("Bull dog", "bull-dog", "Bull  Dog")."""
    return " ".join(re.sub(r"[\W_]+", " ", label.casefold()).split())


def colliding_labels(folders: list[str]) -> dict[str, list[str]]:
    """Class folders whose labels collide, by the label of the group's first folder (sorted):
    'Beagle/' and 'beagle/', or 'Bull dog/', 'bull_dog/' and 'n02000000-Bull_dog/'."""
    groups: dict[str, list[str]] = {}
    for folder in sorted(folders):
        groups.setdefault(label_key(label_for(folder)), []).append(folder)
    return {label_for(group[0]): group for group in groups.values() if len(group) > 1}

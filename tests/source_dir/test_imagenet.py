"""Breed names meet the pretrained classifier's categories: the synonym table, the matching
rules, and what they make of the real dogImages and Stanford Dogs class lists."""

from __future__ import annotations

from pathlib import Path

import pytest

DOGIMAGES_CLASSES = Path(__file__).resolve().parents[1] / "fixtures" / "dogimages-classes.txt"


@pytest.fixture
def imagenet(breedkit):
    from breedkit import imagenet

    return imagenet


@pytest.fixture
def categories(imagenet):
    return imagenet.categories("mobilenet_v2")


def test_categories_are_torchvisions_imagenet_1k_with_the_dogs_where_the_udacity_detector_looked(imagenet, categories):
    assert len(categories) == imagenet.NUM_CATEGORIES == 1000
    dogs = [categories[i] for i in imagenet.DOG_CATEGORIES]
    assert len(dogs) == 118
    assert (dogs[0], dogs[-1]) == ("Chihuahua", "Mexican hairless")
    assert categories[150] == "sea lion" and categories[269] == "timber wolf"  # the neighbours are not dogs


def test_every_synonym_names_a_real_dog_category(imagenet, categories):
    by_name = {name: index for index, name in enumerate(categories)}
    for key, names in imagenet.SYNONYMS.items():
        assert key == imagenet.normalize(key), key  # keys are already normalised
        for name in names:
            assert name in by_name, (key, name)
            assert by_name[name] in imagenet.DOG_CATEGORIES, (key, name)
        # A synonym entry only for names that do not already match a category directly.
        assert key not in {imagenet.normalize(c) for c in categories}, key


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("032.Boston_terrier", ["Boston bull"]),
        ("071.German_shepherd_dog", ["German shepherd"]),
        ("015.Basset_hound", ["basset"]),
        ("124.Poodle", ["toy poodle", "miniature poodle", "standard poodle"]),
        ("072.German_shorthaired_pointer", ["German short-haired pointer"]),  # hyphen and case ignored
        ("n02096585-Boston_bull", ["Boston bull"]),  # Stanford: the category's own name
        ("n02085936-Maltese_dog", ["Maltese dog"]),
        ("101.Maltese", ["Maltese dog"]),
        ("Golden retriever", ["golden retriever"]),  # a plain label
        ("056.Dachshund", []),  # not an ImageNet class: stays unmatched, never a look-alike
        ("040.Bulldog", []),
        ("081.Greyhound", []),  # ImageNet has only the Italian greyhound
        ("103.Mastiff", []),  # bull mastiff and Tibetan mastiff are other breeds
        ("", []),
    ],
)
def test_names_match_the_same_breed_only(imagenet, categories, name, expected):
    (indices,) = imagenet.match([name], categories)
    assert [categories[i] for i in indices] == expected


# dogImages breeds that ImageNet-1k has no category for (Blenheim spaniel is a colour of two
# of them, the Cavalier and the English toy spaniel, so it is neither's synonym).
NOT_IN_IMAGENET = """Akita American_eskimo_dog American_foxhound American_water_spaniel Anatolian_shepherd_dog
Australian_cattle_dog Australian_shepherd Bearded_collie Beauceron Belgian_tervuren Bichon_frise Black_russian_terrier
Boykin_spaniel Bull_terrier Bulldog Canaan_dog Cane_corso Cavalier_king_charles_spaniel Chinese_crested Chinese_shar-pei
Dachshund Dogue_de_bordeaux English_toy_spaniel Field_spaniel Finnish_spitz German_pinscher German_wirehaired_pointer
Glen_of_imaal_terrier Greyhound Havanese Icelandic_sheepdog Irish_red_and_white_setter Lowchen Manchester_terrier
Mastiff Neapolitan_mastiff Norwegian_buhund Norwegian_lundehund Nova_scotia_duck_tolling_retriever
Parson_russell_terrier Petit_basset_griffon_vendeen Pharaoh_hound Plott Pointer Portuguese_water_dog Smooth_fox_terrier
Wirehaired_pointing_griffon""".split()


def test_dogimages_breeds_match_every_category_imagenet_has_for_them(imagenet, categories):
    folders = DOGIMAGES_CLASSES.read_text().split()
    assert len(folders) == 133
    matches = imagenet.match(folders, categories)
    unmatched = [f.split(".", 1)[1] for f, m in zip(folders, matches) if not m]
    assert unmatched == NOT_IN_IMAGENET
    assert sum(1 for m in matches if m) == 133 - 47 == 86
    assert all(i in imagenet.DOG_CATEGORIES for m in matches for i in m)
    # Two dogImages breeds that WordNet files under one category both start from it.
    cocker = {f: m for f, m in zip(folders, matches) if "ocker_spaniel" in f}
    assert cocker["053.Cocker_spaniel"] == cocker["061.English_cocker_spaniel"] == (categories.index("cocker spaniel"),)


def test_stanford_folders_match_their_own_wnid_category(imagenet, categories, dogs_dir):
    # examples/dogs keeps Stanford Dogs' folder names, whose names are the ImageNet categories'.
    folders = sorted(p.name for p in dogs_dir.iterdir())
    matches = imagenet.match(folders, categories)
    assert all(len(m) == 1 for m in matches), dict(zip(folders, matches))
    assert [categories[m[0]].lower().replace(" ", "_") for m in matches] == [f.split("-", 1)[1].lower() for f in folders]


def test_match_classes_falls_back_to_the_label(imagenet, categories, breedkit):
    from breedkit.classes import BreedClass

    classes = [BreedClass(0, "Beagle", "dogs_0"), BreedClass(1, "Husky-ish", "dogs_1")]
    assert imagenet.match_classes(classes, categories) == [(categories.index("beagle"),), ()]

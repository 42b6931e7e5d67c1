"""Test accuracy of every training recipe side by side, with the zero-shot ImageNet anchor.

    python benchmarks/bench_accuracy.py [--sample DIR] [--splits 3] [--seeds 3] [--pets DIR]

The 1,200-photo Stanford Dogs sample (120 breeds x 10, ../shared/data/dog-samples/
stanford-dogs-224; read its SOURCE.md: not part of this repository) is ingested with
`dogbreed ingest` at `--splits` split seeds (80/10/10, stratified: 960 / 120 / 120). On each
split every recipe trains `--seeds` times with source_dir/train.py itself (in this process,
its `cli()` with the recipe's flags), on one shared feature cache, and is measured on the
split's test photos (evaluation.json: top-1, top-5). Nothing is chosen on test: each run keeps
its best epoch on valid, and the defaults are chosen on the valid column (the kept epoch's
valid accuracy). The table gives mean +- standard deviation over splits x seeds, and each
recipe's mean paired difference from the anchor on test (same split, same photos).

The anchor is the pretrained ImageNet classifier restricted to the 120 breeds, with no
training: the new head initialised from its rows (train.py's --head-init pretrained) and
evaluated before any step.

Two more checks, on photos that are not from ImageNet (the Stanford photos are, so a
pretrained network has seen them): the AIPND pet photos (../shared/data/dog-samples/
aipnd-pet-images, `--pets`): the default recipe's model trained on split 0, served through
inference.py's own hooks, on the 25 dogs whose breed is one of the 120; and the "is it a dog?"
confusion table on all 40 (30 dogs, 10 other animals) at deploy.dog_threshold. And unknown
breeds: split 0 with 42 of the 120 class folders renamed so that no ImageNet name matches
(as 47 of dogImages' 133 breeds have none), default recipe vs a random head.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.util
import io
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCE_DIR = REPO / "src" / "dogbreed" / "source_dir"
WEIGHTS = REPO / "examples" / "weights" / "mobilenet_v2-imagenet1k-from-int8.fp16.pth"
SHARED = REPO.parent / "shared" / "data" / "dog-samples"
DOG_THRESHOLD = 0.5  # deploy.dog_threshold's default
# The AIPND photos that are not dogs (SOURCE.md); the others are named Breed_Name_NNNNN.jpg.
OTHER_ANIMALS = {"cat", "Rabbit", "fox_squirrel", "gecko", "great_horned_owl", "polar_bear", "skunk"}

OLD = ["--head-init", "random", "--lr", "1e-3", "--epochs", "5", "--label-smoothing", "0", "--lr-schedule", "constant",
       "--warmup-epochs", "0", "--tta", "none"]  # fmt: skip
ROWS = ["--head-init", "pretrained", "--lr", "1e-4", "--epochs", "10", "--label-smoothing", "0",
        "--lr-schedule", "constant", "--warmup-epochs", "0", "--tta", "none"]  # fmt: skip
SMOOTH = ["--head-init", "pretrained", "--lr", "1e-4", "--epochs", "10", "--label-smoothing", "0.1",
          "--lr-schedule", "cosine", "--warmup-epochs", "1", "--tta", "none"]  # fmt: skip
RECIPES: dict[str, list[str]] = {
    "before: random head, lr 1e-3, 5 epochs (the old default)": OLD,
    "head from ImageNet rows, AdamW lr 1e-4, 10 epochs": ROWS,
    "+ label smoothing 0.1, 1-epoch warm-up + cosine (**the default**)": SMOOTH,
    "default + flip test-time augmentation": ["--tta", "flip"],
    "default + 2 augmented views per photo": ["--augment-views", "2"],
    "default with lr 1e-3": ["--lr", "1e-3"],
    "default with a random head": ["--head-init", "random"],
}
TUNED = "`tune -c hpo.yaml` (8 trials) then `train --from-tuning latest`"
ANCHOR = "zero-shot ImageNet head, no training (anchor)"
ANCHOR_TTA = "zero-shot ImageNet head + flip TTA"

sys.path.insert(0, str(SOURCE_DIR))


def load_train_module():
    spec = importlib.util.spec_from_file_location("bench_train", SOURCE_DIR / "train.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def ingest(sample: Path, dest: Path, seed: int, workspace: Path) -> Path:
    if (dest / "manifest.json").is_file():  # a kept --work folder: the same split again
        return dest
    exe = Path(sys.executable).parent / "dogbreed"
    command = [str(exe), "ingest", str(sample), "--dest", str(dest), "--json", "--set", f"data.seed={seed}",
               "--set", f"workspace={workspace}"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"ingest of {sample} failed: {done.stderr.strip()}")
    answer = json.loads(done.stdout)
    print(f"  split seed {seed}: {answer['splits']} ({dest})", file=sys.stderr, flush=True)
    return dest


def train(train_py, data: Path, out: Path, cache: Path, flags: list[str], seed: int) -> dict:
    """One run of train.py's own cli(); returns evaluation.json."""
    shutil.rmtree(out, ignore_errors=True)
    argv = ["--data-dir", str(data), "--weights", str(WEIGHTS), "--seed", str(seed), "--num-workers", "0",
            "--cache-dir", str(cache), "--model-dir", str(out / "model"), "--output-data-dir", str(out / "output"),
            "--checkpoint-dir", str(out / "checkpoints"), *flags]  # fmt: skip
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        train_py.cli(argv)
    return with_valid(out / "output")


def with_valid(output: Path) -> dict:
    """evaluation.json (test) plus the kept epoch's valid accuracy, which is what picks a recipe."""
    result = json.loads((output / "evaluation.json").read_text())
    result["valid_top1"] = json.loads((output / "metrics.json").read_text())["final"]["valid_acc"]
    return result


def zero_shot(train_py, data: Path, cache: Path, tta: bool) -> dict:
    """The anchor: train.py's own network, head initialised from the ImageNet rows, evaluated
    on the test split's cached features before any training step."""
    import torch
    from breedkit import distributed, engine, evaluation
    from breedkit.data import load_index

    args = train_py.get_args_parser().parse_args(
        ["--data-dir", str(data), "--weights", str(WEIGHTS), "--tta", "flip" if tta else "none", "--cache-dir", str(cache)]
    )
    hp = train_py.Hyperparameters.from_args(args)
    index = load_index(data)
    cpu, world = torch.device("cpu"), distributed.World()
    with contextlib.redirect_stderr(io.StringIO()):
        net = train_py.build_network(hp, len(index.classes), str(WEIGHTS), cpu)
        paths = train_py.resolve_paths(args, {})
        from breedkit.models import weights_identity

        source = train_py.make_source(hp, True, index, net, paths, weights_identity(str(WEIGHTS)), device=cpu,
                                      world=world, num_workers=0)  # fmt: skip
        train_py.init_head(hp, net, index, source, lambda message: None)
    outputs: list = []
    engine.evaluate(source.module, source.eval_batches("test"), device=cpu, amp=False, world=world, outputs=outputs)
    log_probs = torch.cat([p for p, _ in outputs])
    labels = torch.cat([y for _, y in outputs])
    result = evaluation.evaluate(log_probs.exp(), labels, index.classes, [s.path for s in index.splits["test"]])
    valid = engine.evaluate(source.module, source.eval_batches("valid"), device=cpu, amp=False, world=world)
    result["valid_top1"] = valid.acc
    return result


def cli(*args: str) -> dict:
    exe = Path(sys.executable).parent / "dogbreed"
    done = subprocess.run([str(exe), *args, "--json"], capture_output=True, text=True, check=False, cwd=REPO)
    if done.returncode != 0:
        raise SystemExit(f"dogbreed {' '.join(args)} failed: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout)


def tuned(sample: Path, split_seed: int, work: Path, cache: Path) -> dict:
    """The user's way, through the CLI: ingest, tune with configs/hpo.yaml, train the best
    trial's parameters; its evaluation.json. The workspace's feature cache is the benchmark's
    own (the same split gives the same manifest, so the same cache keys): the CLI's runs
    extract nothing again."""
    workspace = work / f"tuned-{split_seed}"
    shutil.rmtree(workspace, ignore_errors=True)
    (workspace / "cache").mkdir(parents=True)
    (workspace / "cache" / "features").symlink_to(cache.resolve(), target_is_directory=True)
    common = ["-c", "configs/local.yaml", "--set", f"workspace={workspace}", "--set", f"model.weights={WEIGHTS}",
              "--set", f"data.seed={split_seed}"]  # fmt: skip
    cli("ingest", str(sample), *common)
    search = cli("tune", *common, "-c", "configs/hpo.yaml")
    best = search["best"]
    print(f"    tuned on split {split_seed}: best {best['name']} {best['params']} valid_acc={best['objective']}",
          file=sys.stderr, flush=True)  # fmt: skip
    job = cli("train", *common, "--from-tuning", "latest")
    return with_valid(workspace / "jobs" / job["training_job"] / "output" / "data")


def rename_classes(data: Path, dest: Path, count: int, seed: int) -> Path:
    """A copy of the dataset whose `count` class folders have names no ImageNet category has."""
    import random

    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(data, dest)
    manifest = json.loads((dest / "manifest.json").read_text())
    chosen = set(random.Random(seed).sample(range(len(manifest["classes"])), count))
    renamed = {}
    for cls in manifest["classes"]:
        if cls["index"] in chosen:
            new = f"breed_{cls['index']:03d}"
            renamed[cls["folder"]] = new
            cls["folder"], cls["label"] = new, new
    for entry in manifest["files"]:
        split, folder, name = entry["path"].split("/")
        if folder in renamed:
            target = dest / split / renamed[folder]
            target.mkdir(parents=True, exist_ok=True)
            (dest / entry["path"]).rename(target / name)
            entry["path"] = f"{split}/{renamed[folder]}/{name}"
            entry["label"] = renamed[folder]
    for split in ("train", "valid", "test"):
        for folder in renamed:
            shutil.rmtree(dest / split / folder, ignore_errors=True)
    body = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    manifest["manifest_sha256"] = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return dest


def mean_sd(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {sd:.3f}"


def table(results: dict[str, list[tuple[int, dict]]], anchor: dict[int, dict]) -> str:
    lines = [
        "| recipe | valid top-1 | test top-1 | test top-5 | test top-1 minus anchor (paired) | runs |",
        "|---|---|---|---|---|---|",
    ]
    for name, runs in results.items():
        valid = [r["valid_top1"] for _, r in runs]
        top1 = [r["top1"] for _, r in runs]
        top5 = [r["top5"] for _, r in runs]
        diff = [r["top1"] - anchor[split]["top1"] for split, r in runs]
        lines.append(
            f"| {name} | {mean_sd(valid)} | {mean_sd(top1)} | {mean_sd(top5)} | {statistics.mean(diff):+.3f} | {len(runs)} |"
        )
    return "\n".join(lines)


def pets_check(train_py, data: Path, cache: Path, pets: Path, work: Path) -> str:
    """The default model, served through inference.py's hooks, on the AIPND photos."""
    spec = importlib.util.spec_from_file_location("bench_inference", SOURCE_DIR / "inference.py")
    inference = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(inference)
    from breedkit import imagenet

    out = work / "pets-model"
    train(train_py, data, out, cache, [], seed=0)
    model = inference.model_fn(str(out / "model"))
    categories = imagenet.categories()
    classes = json.loads((out / "model" / "classes.json").read_text())["classes"]
    class_of_category = {}
    for c in classes:
        (rows,) = imagenet.match([c["folder"]], categories)
        if len(rows) == 1:
            class_of_category[rows[0]] = c["index"]
    right = total = 0
    confusion = {("dog", True): 0, ("dog", False): 0, ("other", True): 0, ("other", False): 0}
    for photo in sorted(pets.iterdir()):
        breed = re.sub(r"_\d+\.jpg$", "", photo.name)
        is_dog = breed not in OTHER_ANIMALS
        request = inference.input_fn(photo.read_bytes(), "image/jpeg")
        prediction = inference.predict_fn(request, model)
        confusion[("dog" if is_dog else "other", float(prediction.dog_probability[0]) >= DOG_THRESHOLD)] += 1
        (rows,) = imagenet.match([breed], categories) if is_dog else ((),)
        if len(rows) == 1 and rows[0] in class_of_category:
            total += 1
            right += int(int(prediction.probabilities[0].argmax()) == class_of_category[rows[0]])
    # Flip TTA's cost: the same model and photo, one forward pass vs two, interleaved.
    photo = next(p for p in sorted(pets.iterdir()) if p.name.startswith("Beagle"))
    request = inference.input_fn(photo.read_bytes(), "image/jpeg")
    timings: dict[str, list[float]] = {"none": [], "flip": []}
    for _ in range(20):
        for mode in ("none", "flip"):
            model.tta = mode
            started = time.perf_counter()
            inference.predict_fn(request, model)
            timings[mode].append(time.perf_counter() - started)
    none, flip = statistics.median(timings["none"]), statistics.median(timings["flip"])
    return "\n".join(
        [
            f"AIPND dogs of the 120 breeds: {right}/{total} right (default recipe, split 0, seed 0, served by inference.py)",
            f"is it a dog? at dog_threshold {DOG_THRESHOLD}: dogs called dogs {confusion[('dog', True)]}/"
            f"{confusion[('dog', True)] + confusion[('dog', False)]}, other animals called dogs "
            f"{confusion[('other', True)]}/{confusion[('other', True)] + confusion[('other', False)]}",
            f"predict_fn latency, one photo, median of 20: tta none {none * 1000:.1f} ms, flip {flip * 1000:.1f} ms "
            f"({flip / none:.2f}x)",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=Path, default=SHARED / "stanford-dogs-224")
    parser.add_argument("--pets", type=Path, default=SHARED / "aipnd-pet-images")
    parser.add_argument("--splits", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--recipes", nargs="*", help="substrings of recipe names to run (default: all)")
    parser.add_argument(
        "--work", type=Path, help="keep splits and the feature cache here, and reuse them (default: a temporary folder)"
    )
    args = parser.parse_args()
    if not args.sample.is_dir():
        raise SystemExit(f"{args.sample}: no such folder; pass --sample with class folders of photos (see the docstring)")

    import torch

    os.environ.setdefault("OMP_NUM_THREADS", str(torch.get_num_threads()))
    train_py = load_train_module()
    recipes = {k: v for k, v in RECIPES.items() if not args.recipes or any(s in k for s in args.recipes)}
    started = time.perf_counter()
    print(f"load average {os.getloadavg()[0]:.1f}, torch threads {torch.get_num_threads()}", flush=True)
    with contextlib.ExitStack() as stack:
        if args.work:
            args.work.mkdir(parents=True, exist_ok=True)
            work = args.work.resolve()
        else:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-accuracy-")))
        cache = work / "cache"
        datasets = [ingest(args.sample, work / f"data-{k}", k, work / ".dogbreed") for k in range(args.splits)]
        anchor = {k: zero_shot(train_py, data, cache, tta=False) for k, data in enumerate(datasets)}
        anchor_tta = {k: zero_shot(train_py, data, cache, tta=True) for k, data in enumerate(datasets)}
        results: dict[str, list[tuple[int, dict]]] = {
            ANCHOR: [(k, anchor[k]) for k in anchor],
            ANCHOR_TTA: [(k, anchor_tta[k]) for k in anchor_tta],
        }
        for name, flags in recipes.items():
            results[name] = []
            for k, data in enumerate(datasets):
                for seed in range(args.seeds):
                    results[name].append((k, train(train_py, data, work / "run", cache, flags, seed)))
            print(f"  {name}: top-1 {mean_sd([r['top1'] for _, r in results[name]])}", file=sys.stderr, flush=True)
        if not args.recipes or any(s in TUNED for s in args.recipes):
            results[TUNED] = [(k, tuned(args.sample, k, work, cache)) for k in range(args.splits)]
        print(f"\n{args.splits} splits x {args.seeds} seeds of {args.sample.name} (test photos per split: "
              f"{anchor[0]['num_images']})\n")  # fmt: skip
        print(table(results, anchor))

        unknown = rename_classes(datasets[0], work / "data-unknown", 42, seed=0)
        rows = {}
        for name, flags in {"default": [], "random head": ["--head-init", "random"]}.items():
            rows[name] = [train(train_py, unknown, work / "run", cache, flags, seed)["top1"] for seed in range(args.seeds)]
        print(f"\nsplit 0 with 42 of 120 breeds renamed out of ImageNet's reach, {args.seeds} seeds: "
              + ", ".join(f"{name} top-1 {mean_sd(v)}" for name, v in rows.items()))  # fmt: skip

        if args.pets.is_dir():
            print("\n" + pets_check(train_py, datasets[0], cache, args.pets, work))
        else:
            print(f"\n({args.pets} not found: no check on photos from outside ImageNet)")
    print(f"\n{time.perf_counter() - started:.0f} s in all; load average now {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()

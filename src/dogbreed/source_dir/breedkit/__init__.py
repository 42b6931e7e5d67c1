"""The training and serving package shipped as SageMaker's source_dir (and inside model.tar.gz).

Only the stdlib, torch, torchvision, Pillow and numpy (psutil and smdebug when present):
it runs in the SageMaker PyTorch containers, which have nothing of the host's dependencies.
Modules: presets (image transforms), models (torchvision nets, backbone/head split, freeze),
classes (classes.json, hyperparameters.json), atomic (crash-safe writes), and the training
pieces that train.py assembles.
"""

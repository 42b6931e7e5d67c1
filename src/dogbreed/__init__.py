"""dogbreed: dog photos to a live breed classifier, on SageMaker or on your own machine."""

__version__ = "0.1.0"

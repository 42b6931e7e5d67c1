"""The local endpoint: SageMaker's container HTTP contract on 127.0.0.1, and its client.

Server side (runs as `python -m dogbreed.serving`, started by `dogbreed deploy`):
  main.py           the process: bind, load the model, serve, expire, drain on SIGTERM
  http_server.py    the HTTP layer: /ping, /invocations, /endpoints/{name}/invocations
  model_handler.py  loads the model's code/inference.py and runs its four hooks
  runtime_api.py    the SageMaker Runtime API's response shapes (what botocore parses)
Client side (imports no torch):
  client.py         EndpointClient over an injected HTTP transport
  upload.py         image files -> request bodies under the payload limit
  errors.py         what invoking an endpoint can raise
Shared: limits.py (payload and time limits), process.py (is this pid our server? stop it),
model_archive.py (model.tar.gz or a model dir -> a model dir, extracted safely).
"""

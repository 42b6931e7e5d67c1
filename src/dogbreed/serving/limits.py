"""The limits of SageMaker real-time endpoints, which the local endpoint enforces too.

https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_runtime_InvokeEndpoint.html
"""

# Request and response payloads of InvokeEndpoint: 6 MB.
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024  # 6,291,456

# A container must answer an invocation within 60 seconds.
INVOCATION_TIMEOUT_S = 60.0

# What a client waits for an answer: the server's limit plus a margin (AWS suggests 70 s).
CLIENT_TIMEOUT_S = 70.0

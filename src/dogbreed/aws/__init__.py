"""The only place boto3 and SageMaker sessions are made, plus request builders, naming and tags."""

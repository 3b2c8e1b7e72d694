"""The local stack: the whole system on one machine, with AWS played by an embedded moto server.

`python -m sotong_local --hospital hospitals/demo.yaml` (what `make run` runs) starts it; tests use
`sotong_local.stack.LocalStack`. Everything it builds comes from `sotong.resources`, the same
definitions the CDK stack deploys. Kept free of imports so `sotong outbox` starts fast.

It also holds what runs on an operator's machine but never in a Lambda, so stays out of the
shared layer: the `sotong` command line (`cli`), the OpenAPI generator (`openapi`) and the
classifier's evaluation (`evaluation`).
"""

"""The local stack: the whole system on one machine, with AWS played by an embedded moto server.

`python -m sotong_local --hospital hospitals/demo.yaml` (what `make run` runs) starts it; tests use
`sotong_local.stack.LocalStack`. Everything it builds comes from `sotong.resources`, the same
definitions the CDK stack deploys. Kept free of imports so `sotong outbox` starts fast.
"""

"""Sotong: the shared package behind every function, the CDK app and the local stack."""

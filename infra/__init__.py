"""The CDK app: one CloudFormation stack per hospital, built from `sotong.resources`."""

import os

# jsii starts a Node process on the first `aws_cdk` import and prints a large banner when that
# Node is past its end of life; the banner is noise in synth output and test logs.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "18,20")
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION", "1")

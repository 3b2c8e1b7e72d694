"""Every test runs with fake AWS credentials in Seoul, so nothing can reach real AWS."""

import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SECURITY_TOKEN": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "ap-northeast-2",
        "AWS_REGION": "ap-northeast-2",
        "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
        "JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION": "1",
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
        "POWERTOOLS_METRICS_NAMESPACE": "SotongTest",
        "POWERTOOLS_DEV": "false",
        "SOTONG_HOSPITAL_CONFIG": os.path.join(
            os.path.dirname(__file__), "..", "hospitals", "demo.yaml"
        ),
        "SOTONG_HOSPITAL_ID": "demo",
    }
)
for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
    os.environ.pop(name, None)

# Every keyed digest (phone and e-mail keys, patient ids, tombstones, cursors) needs the hospital's
# key. Tests use this one; the integration fixture `aws` puts it in (moto's) Secrets Manager and
# lets the functions read it from there, and the local stack makes one of its own.
from sotong import init_phase, keys  # noqa: E402

# The tests import many handler modules in one process, some of them made to fail at import:
# the collector's pause (a handler module's init, `sotong.init_phase`) is over before they start.
init_phase.finished()

TEST_HASH_KEY = b"sotong-test-hash-key-0123456789abcdef"
keys.use_key(TEST_HASH_KEY)

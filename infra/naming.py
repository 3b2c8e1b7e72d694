"""Names derived from the definitions in `sotong.resources`."""


def pascal(name: str) -> str:
    """`notification_sender` -> `NotificationSender`, for construct ids."""
    return "".join(part.capitalize() for part in name.replace("-", "_").split("_"))


def physical(hospital_id: str, name: str) -> str:
    """The AWS resource name of `name` in one hospital's stack, e.g. `sotong-demo-records`."""
    return f"sotong-{hospital_id}-{name.replace('_', '-')}"

"""The one rule for the names ct puts in paths and resource ids: models, datasets, aliases.

A letter or digit, then up to 63 letters, digits, `_`, `.` or `-`: safe as a folder name on any
store and inside a Prefect resource id. `is_name` also refuses `..`, as the registry does.
"""

import re

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


def is_name(value: object) -> bool:
    """Does `value` follow the rule (the pattern, and no `..`)?"""
    return (
        isinstance(value, str) and re.match(NAME_PATTERN, value) is not None and ".." not in value
    )

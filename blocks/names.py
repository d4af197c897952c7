"""The one rule for the names ct puts in paths and resource ids: models, datasets, aliases.

A letter or digit, then up to 63 letters, digits, `_`, `.` or `-`: safe as a folder name on any
store and inside a Prefect resource id. The registry also refuses `..` (`check_name`).
"""

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"

"""The old import path of :mod:`promptmix.configio`, which moved below ``training/`` so that
readers of saved runs (``promptmix.rundirs``) need not import training. Kept for code (and
long-running study workers) written against ``promptmix.training.configio``."""

from promptmix.configio import (  # noqa: F401  (re-exported)
    STRICT,
    ConfigKey,
    ConfigLoader,
    apply_overrides,
    config_keys,
    deep_merge,
    load_yaml,
    option,
    parse_override,
    read_yaml,
    require,
    validate,
)

"""Kinds of settings that the run file treats apart, declared on a settings dataclass's field.

- ``secret_setting``: a credential (an API key, a token). Never written to the run file, its report or a log: the
  stored config holds ``<redacted>`` where one was set (:func:`engine.config.stored_config`), and it does not count
  when a resume compares settings.
- ``local_setting``: a path on this machine (a cache folder). Stored, but a resume on another machine or with another
  cache does not count it as a change of settings.
"""

from __future__ import annotations

from dataclasses import field

REDACTED = "<redacted>"


def secret_setting(default=None, doc: str = ""):
    return field(default=default, metadata={"secret": True, "doc": doc})


def local_setting(default=None, doc: str = ""):
    return field(default=default, metadata={"local": True, "doc": doc})

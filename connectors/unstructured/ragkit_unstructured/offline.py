"""Keep unstructured off the network.

unstructured 0.27 reaches out in three places, all of which this module
closes before any partitioner runs:

* a telemetry ping when the package is imported and once per partition
  call (opted out through ``SCARF_NO_ANALYTICS`` / ``DO_NOT_TRACK``);
* a usage notice printed on first use (``UNSTRUCTURED_DISABLE_NOTICE``);
* its text classifier (title vs. narrative text, used by the pptx, xlsx,
  docx, html, text and email partitioners) loads spaCy's ``en_core_web_sm``
  and, when that model is not installed, downloads and pip-installs it at
  run time. When the model is not installed, ragkit swaps in a rule-based
  stand-in: spaCy's blank English tokenizer with a rule-based sentencizer,
  and a small heuristic for "contains a verb". The download function itself
  is replaced by one that raises, so no code path can fetch it.

With ``en_core_web_sm`` installed (``pip install`` of the model wheel), the
real model is used, still without network access.
"""

from __future__ import annotations

import importlib.util
import os
import re
import threading
from typing import Any

_lock = threading.Lock()
_done = False
_mode = ""

# words that make a short line read as a sentence rather than a heading
_VERB_WORDS = """
is are was were be been being am has have had do does did can could will would shall should may might
must need needs get gets got make makes made take takes took give gives gave go goes went see sees saw
use uses used show shows shown find finds found include includes included provide provides provided
"""
_VERBISH = frozenset(_VERB_WORDS.split())
_SENTENCE_END = re.compile(r"[.!?…][\"')\]]*\s*$")
_WORD = re.compile(r"[A-Za-z']+")


def _quiet_environment() -> None:
    for name in ("SCARF_NO_ANALYTICS", "DO_NOT_TRACK"):
        if not (os.environ.get(name) or "").strip():
            os.environ[name] = "true"
    os.environ.setdefault("UNSTRUCTURED_DISABLE_NOTICE", "1")


def contains_verb_heuristic(text: str) -> bool:
    """Stand-in for a POS tagger: whether this line reads like a sentence.

    True when it ends like a sentence, or has a common verb or auxiliary,
    or an ``-ed`` / ``-ing`` word among several words.
    """
    if _SENTENCE_END.search(text):
        return True
    words = [w.lower() for w in _WORD.findall(text)]
    if any(w in _VERBISH for w in words):
        return True
    return len(words) >= 4 and any(w.endswith(("ed", "ing")) and len(w) > 4 for w in words)


def _blank_pipeline() -> Any:
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    return nlp


def _refuse_download() -> None:
    from ragkit.errors import UnavailableError

    raise UnavailableError(
        "unstructured tried to download spaCy's en_core_web_sm model; ragkit keeps it offline "
        "(install the model wheel yourself to use it)"
    )


def ensure_offline() -> str:
    """Apply the measures above (before every partition call); returns the text-classifier mode.

    ``"en_core_web_sm"`` when that spaCy model is installed, else ``"rules"``.
    The environment switches are checked on every call, since unstructured
    reads them on every partition call; the patches are applied once.
    """
    global _done, _mode
    _quiet_environment()
    with _lock:
        if _done:
            return _mode
        from unstructured.nlp import tokenize
        from unstructured.partition import text_type

        # module attributes looked up at call time, so replacing them takes effect everywhere
        setattr(tokenize, "_install_spacy_model", _refuse_download)  # noqa: B010
        if importlib.util.find_spec("en_core_web_sm") is not None:
            _mode = "en_core_web_sm"
        else:
            blank = _blank_pipeline()
            setattr(tokenize, "_get_nlp", lambda: blank)  # noqa: B010
            setattr(text_type, "contains_verb", contains_verb_heuristic)  # noqa: B010
            _mode = "rules"
        _done = True
        return _mode

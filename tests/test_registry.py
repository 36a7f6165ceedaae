"""Components are found by role and name, built from config, and saved back to it."""

from __future__ import annotations

import pytest

from ragkit import registry
from ragkit.component import Component
from ragkit.config import CollectionConfig
from ragkit.errors import ConfigError, NotFoundError
from ragkit.recipes import available_recipes, find_recipe, load_collection_config


@registry.register("splitter", "test-fixed")
class FixedSplitter(Component):
    """A tiny component used to check the base class's config capture."""

    def __init__(self, size: int = 10, label: str = "x", **extra: int) -> None:
        if size < 1:
            raise ConfigError("size must be positive")
        self.size = size


def test_config_is_the_constructor_arguments_and_round_trips():
    component = FixedSplitter(size=4, bonus=2)
    config = component.to_config()
    assert config == {"type": "test-fixed", "size": 4, "label": "x", "bonus": 2}
    rebuilt = registry.build("splitter", config)
    assert isinstance(rebuilt, FixedSplitter)
    assert rebuilt.to_config() == config


def test_bad_config_fails_when_built_not_when_used():
    with pytest.raises(ConfigError, match="size must be positive"):
        registry.build("splitter", {"type": "test-fixed", "size": 0})


def test_unknown_option_is_named():
    @registry.register("splitter", "test-strict")
    class Strict(Component):
        def __init__(self, size: int = 1) -> None:
            self.size = size

    with pytest.raises(ConfigError, match=r"unknown option\(s\) sise; allowed: size"):
        registry.build("splitter", {"type": "test-strict", "sise": 3})


def test_unknown_type_lists_the_available_ones():
    with pytest.raises(NotFoundError, match=r"no splitter named 'nope'; available: .*recursive"):
        registry.build("splitter", {"type": "nope"})
    with pytest.raises(ConfigError, match="needs a 'type' key"):
        registry.build("splitter", {"chunk_size": 3})


def test_builtins_and_connectors_are_discovered():
    assert {"recursive", "markdown", "token", "sentence"} <= set(registry.available("splitter"))
    assert {"faiss", "milvus"} <= set(registry.available("store"))
    assert {"sentence-transformers", "openai"} <= set(registry.available("embedder"))
    assert "bm25" in registry.available("lexical")
    assert {"pdf", "docx", "unstructured"} <= set(registry.available("loader"))


def test_shipped_recipes_load_and_default_recipe_is_the_default_config():
    assert {"default", "milvus"} <= set(available_recipes())
    assert load_collection_config("default") == CollectionConfig()
    assert load_collection_config("milvus").store["type"] == "milvus"
    with pytest.raises(NotFoundError, match="no recipe named 'nope'"):
        find_recipe("nope")


def test_collection_config_errors_name_the_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("collection:\n  embed_batch_size: 0\n  splitter: {chunk_size: 3}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: .*splitter: Value error, needs a 'type' key"):
        CollectionConfig.from_yaml(bad)
    bad.write_text("collection: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        CollectionConfig.from_yaml(bad)


def _plugin_distribution(root, module: str, component: str) -> None:
    """A minimal installed distribution in ``root``: a module and a dist-info announcing it as a splitter."""
    (root / f"{module}.py").write_text(
        "from ragkit.component import Component\n\nclass Splitter(Component):\n    pass\n", encoding="utf-8"
    )
    info = root / f"{module}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 1.0\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(
        f"[ragkit.components]\nsplitter.{component} = {module}:Splitter\n", encoding="utf-8"
    )


def test_a_connector_on_a_new_path_is_found_though_entry_points_are_remembered(tmp_path, monkeypatch):
    assert "test-plugin" not in registry.available("splitter")  # scanned and remembered
    _plugin_distribution(tmp_path, "ragkit_test_plugin", "test-plugin")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "test-plugin" in registry.available("splitter")  # sys.path changed: scanned again
    assert registry.get("splitter", "test-plugin").__module__ == "ragkit_test_plugin"

    later = tmp_path / "later"
    later.mkdir()
    monkeypatch.syspath_prepend(str(later))
    assert "test-plugin-2" not in registry.available("splitter")
    _plugin_distribution(later, "ragkit_test_plugin_two", "test-plugin-2")  # installed into a path already read
    assert "test-plugin-2" not in registry.available("splitter")  # remembered scan
    registry.refresh()
    assert "test-plugin-2" in registry.available("splitter")

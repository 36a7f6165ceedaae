"""One YAML read-and-validate helper: every mistake is a ConfigError naming the file, the line or the field."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict, Field

from ragkit.config import CollectionConfig, Settings
from ragkit.errors import ConfigError
from ragkit.evaluation.suite import load_suite
from ragkit.rag.config import PipelineConfig
from ragkit.service.settings import ServiceSettings
from ragkit.yaml_io import load_yaml, read_mapping, validate


class Limits(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    size: int = Field(ge=1)


@dataclasses.dataclass
class Point:
    x: int
    y: int = 0


def write(tmp_path: Path, text: str, name: str = "file.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_mapping_is_read_and_an_empty_file_is_an_empty_mapping(tmp_path: Path) -> None:
    assert read_mapping(write(tmp_path, "a: 1\nb: [x, y]\n"), "settings") == {"a": 1, "b": ["x", "y"]}
    assert read_mapping(write(tmp_path, "# only a comment\n"), "settings") == {}


def test_a_parse_error_names_the_file_and_line_without_quoting_it(tmp_path: Path) -> None:
    path = write(tmp_path, "name: ok\nsize: 3\nsecret: a: b\n")
    with pytest.raises(ConfigError) as info:
        read_mapping(path, "settings")
    message = str(info.value)
    assert message.startswith(f"{path} is not valid YAML: mapping values are not allowed")
    assert "at line 3, column" in message and "secret" not in message


def test_the_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"list\.yaml: expected a mapping of suite at the top level, not a list"):
        read_mapping(write(tmp_path, "- a\n- b\n", "list.yaml"), "suite")


def test_an_unreadable_file_says_what_it_was_meant_to_be(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read pipeline .*nope\.yaml: No such file or directory"):
        read_mapping(tmp_path / "nope.yaml", "pipeline")


def test_validation_names_the_file_and_field_for_models_and_dataclasses(tmp_path: Path) -> None:
    path = write(tmp_path, "limits:\n  name: a\n  size: 4\n")
    assert load_yaml(path, Limits, "limits", section="limits") == Limits(name="a", size=4)
    bad = write(tmp_path, "name: a\nsize: 0\ncolour: red\n", "bad.yaml")
    with pytest.raises(ConfigError) as info:
        load_yaml(bad, Limits, "limits")
    assert str(info.value).startswith(f"{bad}: size: Input should be greater than or equal to 1; colour: Extra")
    assert validate(Point, {"x": "3"}, "point") == Point(3, 0)
    with pytest.raises(ConfigError, match=r"^here: x: Field required$"):
        validate(Point, {"y": 1}, "here")


@pytest.mark.parametrize(
    ("read", "what"),
    [
        (CollectionConfig.from_yaml, "config"),
        (PipelineConfig.from_yaml, "pipeline"),
        (lambda path: Settings.load(path), "settings"),
        (lambda path: ServiceSettings.load(path), "service settings"),
        (load_suite, "suite"),
    ],
)
def test_every_reader_goes_through_the_helper(tmp_path: Path, read: Callable[[Path], object], what: str) -> None:
    broken = write(tmp_path, "a: [unclosed\n", "broken.yaml")
    with pytest.raises(ConfigError, match=r"broken\.yaml is not valid YAML: .* at line \d+, column \d+"):
        read(broken)
    listed = write(tmp_path, "- a\n", "listed.yaml")
    with pytest.raises(ConfigError, match=f"listed.yaml: expected a mapping of {what} at the top level"):
        read(listed)

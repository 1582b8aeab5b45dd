"""``masks:`` (rectangles hidden from supervisors, per target pattern), ``record_input: off`` and ``unmask``."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from base.errors import ConfigError
from gateway.config import load_config
from gateway.config.masks import masks_for
from gateway.policy import InputRecording
from gateway.reload import RELOADABLE
from gateway.settings import Settings
from recorder.masking import MaskRegion, MaskSet, MaskStyle
from tests.gateway.test_access_config import HEAD

POLICY = "  - {name: p, groups: [a], targets: [desk-01]}\n"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "deskgate.yaml"
    path.write_text(HEAD + POLICY + textwrap.dedent(text))
    return path


def test_masks_apply_to_the_targets_their_patterns_match(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, """\
        masks:
          - targets: ["desk-*"]
            desktop: 1280x800
            style: blur
            regions:
              - {x: 100, y: 200, width: 300, height: 24, label: card number}
              - {x: 0, y: 0, width: 1280, height: 800}
          - targets: [desk-alice]
            desktop: 640x480
            regions: [{x: 0, y: 0, width: 10, height: 10}]
        """))
    crm = MaskSet((1280, 800), (MaskRegion(100, 200, 300, 24, "card number"), MaskRegion(0, 0, 1280, 800)),
                  MaskStyle.BLUR)
    assert masks_for(config.masks, "desk-01") == (crm,)
    assert masks_for(config.masks, "desk-alice") == (crm, MaskSet((640, 480), (MaskRegion(0, 0, 10, 10),)))
    assert masks_for(config.masks, "wall") == ()
    assert config.masks[0].origin == f"{tmp_path / 'deskgate.yaml'}:{HEAD.count(chr(10)) + 3}"
    assert Settings.from_config(config).vnc_endpoints["desk-01"].masks == (crm,)
    assert "masks" in RELOADABLE


@pytest.mark.parametrize(("entry", "line", "key", "message"), [
    ("- {targets: [desk-01], desktop: 100x100,\n   regions: [{x: 50, y: 50, width: 51, height: 10}]}", 2,
     "masks[0].regions[0]", "reaches outside the 100x100 desktop"),
    ("- {targets: [desk-01], desktop: 100 by 100, regions: [{x: 0, y: 0, width: 1, height: 1}]}", 1,
     "masks[0].desktop", "write WIDTHxHEIGHT in pixels"),
    ("- {targets: [shell-*], desktop: 100x100, regions: [{x: 0, y: 0, width: 1, height: 1}]}", 1,
     "masks[0].targets[0]", "matches no vnc target"),
    ("- {targets: [desk-01], desktop: 100x100, regions: []}", 1, "masks[0].regions", "list at least one rectangle"),
    ("- {targets: [desk-01], desktop: 100x100, style: pixelate, regions: [{x: 0, y: 0, width: 1, height: 1}]}", 1,
     "masks[0].style", "is not one of black, blur"),
    ("- {targets: [desk-01], desktop: 100x100, regions: [{x: 0, y: 0, width: 0, height: 1}]}", 1,
     "masks[0].regions[0].width", "out of range"),
    ("- {targets: [desk-01], desktop: 100x100, regions: [{x: 0, y: 0, w: 1, height: 1}]}", 1,
     "masks[0].regions[0].w", "unknown key"),
])
def test_mask_mistakes_name_file_line_and_key(tmp_path: Path, entry: str, line: int, key: str, message: str) -> None:
    path = write(tmp_path, "masks:\n" + textwrap.indent(entry, "  ") + "\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert (caught.value.line, caught.value.key) == (HEAD.count("\n") + 2 + line, key)
    assert message in caught.value.message


def test_record_input_off_even_bare_and_unmask(tmp_path: Path) -> None:
    path = tmp_path / "deskgate.yaml"
    path.write_text(HEAD + textwrap.dedent("""\
          - {name: quoted, groups: [a], targets: [desk-01], record_input: "off"}
          - {name: bare, groups: [b], targets: [desk-01], record_input: off, unmask: true}
          - {name: default, groups: [c], targets: [desk-01]}
        """))
    quoted, bare, default = load_config(path).policies
    assert quoted.record_input == bare.record_input == InputRecording.OFF
    assert default.record_input == InputRecording.FULL and not default.unmask and bare.unmask
    path.write_text(HEAD + "  - {name: p, groups: [a], targets: [desk-01], record_input: on}\n")
    with pytest.raises(ConfigError, match="record_input: YAML reads 'on' as true"):
        load_config(path)
    path.write_text(HEAD + "  - {name: p, groups: [a], targets: [desk-01], unmask: maybe}\n")
    with pytest.raises(ConfigError, match="unmask: expected true or false"):
        load_config(path)

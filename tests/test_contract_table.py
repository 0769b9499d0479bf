"""The project's contract table (tests/contract_table.json) against sheepCRM's full documents.

These run only when SHEEPCRM_API_DOCS points at a copy of the documents (the folder holding openapi.yaml, with the
v1 notes in ../seeds/); `.ci/run` sets it when `../shared/sheepcrm-api` exists. Without it they are skipped: the
rest of the suite checks requests and answers against the committed table alone.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.contract import TABLE, docs, table
from tests.helpers import REPO

pytestmark = pytest.mark.docs
NOTES = "seeds/sheepcrm-api-v1-notes.txt"


@pytest.fixture(scope="module")
def folder() -> Path:
    found = docs()
    if found is None:
        pytest.skip("SHEEPCRM_API_DOCS is not set: the table is checked against the documents in CI (.ci/run)")
    return found


@pytest.fixture(scope="module")
def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("contract_table", REPO / "scripts" / "contract_table.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["contract_table"] = module
    spec.loader.exec_module(module)
    return module


def test_the_table_is_what_the_documents_say(folder: Path, generator: ModuleType) -> None:
    operations = [(o["method"], o["path"]) for o in table()["operations"]]
    rebuilt = generator.render(generator.build(folder, operations))
    assert rebuilt == TABLE.read_text(), (
        f"{TABLE.name} differs from what the documents say: run python scripts/contract_table.py {folder}"
    )


def test_every_reference_points_at_what_it_names(folder: Path) -> None:
    """Each ref is a line of its document holding the name it is the reference for."""
    texts = {name: (folder / name).read_text().splitlines() for name in table()["cuts"] if name.endswith(".yaml")}
    texts[NOTES] = (folder.parent / NOTES).read_text().splitlines()

    def line(ref: str) -> str:
        document, number = ref.rsplit(":", 1)
        return texts[document][int(number) - 1]

    wrong = []
    for op in table()["operations"]:
        wrong += [f"{op['path']} ?{p}" for p, spec in op["params"].items() if p not in line(spec["ref"])]
        wrong += [f"{op['path']} {s}" for s, ref in op["statuses"].items() if s not in line(ref)]
    for read, entry in table()["fields"].items():
        for field, spec in entry["fields"].items():
            wrong += [f"{read}: {field}" for ref in (spec["ref"] or "").split(", ") if ref and field not in line(ref)]
    assert wrong == []


@pytest.fixture(scope="module")
def declared(folder: Path, generator: ModuleType) -> set[str]:
    """Every property name the three documents declare, and every quoted key of the v1 notes."""
    names: set[str] = set()
    for document in ("openapi.yaml", "openapi-with-tasks.yaml", "openapi-2025-02-draft.yaml"):
        data = generator.Doc(document, (folder / document).read_text()).data
        names |= {prop for prop, _ in generator._declared(data, ())}
    notes = (folder.parent / NOTES).read_text()
    return names | {name for name in ("snoozed_until", "membership_type_display", "user_display", "member_display")
                    if f'"{name}"' in notes}


@pytest.mark.parametrize("name", ["snoozed_until", "membership_type_display", "user_display", "member_display"])
def test_sandbox_only_fields_are_named_by_no_document(declared: set[str], name: str) -> None:
    assert name not in declared

"""No hand-written numbers: every figure in README.md and docs/ sits in a generated block (bench/registry.py), and the
prose around the blocks states no number of its own, except the few kinds that are no result (bench.docs.Allowed)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bench.docs import ROOT, Allowed, config_defaults, pages, stray_numbers
from igcore.config import default_config


@pytest.mark.parametrize("page", pages(), ids=lambda p: p.name)
def test_no_number_outside_the_generated_blocks(page: Path) -> None:
    strays = stray_numbers(page.read_text(), str(page.relative_to(ROOT)))
    assert not strays, ("numbers in prose outside generated blocks; put them in a generated block (bench/registry.py) "
                        "or write the sentence without them:\n" + "\n".join(map(str, strays)))


def test_a_number_typed_into_a_copy_of_a_page_fails(tmp_path: Path) -> None:
    """A result added by hand — in a paragraph, a list, a table or a heading outside the blocks — is found, with its line."""
    page = tmp_path / "microscope.md"
    shutil.copy(ROOT / "docs" / "microscope.md", page)
    text = page.read_text()
    assert stray_numbers(text) == []
    before = text[: text.index("## Choices and why")].count("\n") + 1  # the line the additions start on
    additions = {
        "The student's worst group reaches 97.3 % on D′.": ["97.3"],
        "- saliency fails on 2 of 3 models": ["2", "3"],
        "| model | relevance |\n|---|---|\n| erm | 0.184 |": ["0.184"],
        "### Measured at 300.7 s": ["300.7"],
    }
    for added, numbers in additions.items():
        page.write_text(text.replace("## Choices and why", f"{added}\n\n## Choices and why", 1))
        strays = stray_numbers(page.read_text(), page.name)
        assert [s.number for s in strays] == numbers, added
        assert strays[0].line == before + added.count("\n") and strays[0].path == page.name
    # inside a generated block the same sentence is the generator's business (tests/test_docs_generated.py)
    inside = text.replace("<!-- default-run-evidence:start -->\n", "<!-- default-run-evidence:start -->\nIt reaches 97.3 %.\n", 1)
    assert stray_numbers(inside) == []


def test_numbers_that_are_no_result_pass_and_the_rules_are_narrow() -> None:
    """Code, names, versions, dates, citations, addresses, the exit status, config defaults named with their key and
    confidence levels pass; the same numbers without what makes them so fail."""
    tcav = default_config().microscope.tcav
    fine = [
        "Run `python -m igcore run --set world.rho=0.95` or\n\n```\nseed = 3\n```",
        "The backbone is a ResNet-18 in float32 with all-MiniLM-L6-v2 and SHA-256 digests of CUB_200_2011 files.",
        "Run directory (schema version 2); captum 0.9 passes arguments in swapped order; Python 3.11 or later.",
        "Measured on 2026-11-30. Imitative Generalization (Barnes 2021); relevance mass (Arras et al., 2022).",
        "It serves on <http://127.0.0.1:8501> and on 127.0.0.1 only; join with ray://head:10001.",
        "Bad input exits with code 2; the CLI prints one line and exits 2.",
        f"The TCAV test draws `microscope.tcav.n_random` ({tcav.n_random} random sets) and `tcav.repeats` ({tcav.repeats} draws).",
        "Each effect has a 95% bootstrap interval and the fidelity a 95% CI.",
        "1. the first step\n2. the second step",
    ]
    assert stray_numbers("\n\n".join(fine)) == []
    wrong = {
        "The default run takes 300.7 s on 2 cores.": ["300.7", "2"],
        f"TCAV draws {tcav.n_random} random sets.": [str(tcav.n_random)],  # a default, but no key names it
        f"`tcav.n_random` is {tcav.n_random + 1} here.": [str(tcav.n_random + 1)],  # a key, but not its default
        "Bad input happens in 2 of 3 cases.": ["2", "3"],
        "It reaches 95% accuracy.": ["95"],
        "The run took 4 min 12 s on 2026 images.": ["4", "12", "2026"],
        "It takes 45s, 3x faster, at 64px in 512MB.": ["45", "3", "64", "512"],  # a unit glued to the figure
        "The 2000 images (2048 of them) were drawn.": ["2000", "2048"],  # counts that look like years
        "<p>It reaches 97.3 %.</p>\n": ["97.3"],  # a raw HTML block is read without its tags
        "![accuracy 97.3 %](chart.png)": ["97.3"],  # an image's alt text is prose
    }
    for text, numbers in wrong.items():
        assert [s.number for s in stray_numbers(text)] == numbers, text


def test_config_defaults_are_read_from_the_schema() -> None:
    """The allowed defaults are the schema's own (every world's keys included), not a list kept by hand."""
    defaults = config_defaults()
    config = default_config()
    assert defaults["microscope.tcav.n_random"] == (float(config.microscope.tcav.n_random),)
    assert defaults["microscope.sanity.threshold"] == (config.microscope.sanity.threshold,)
    assert defaults["world.test_eval_fraction"] == (0.5,)  # a key of the image-set worlds, not of the default one
    assert "seed" in defaults and "world.name" not in defaults  # numbers only
    assert Allowed.from_code().exit_status == 2

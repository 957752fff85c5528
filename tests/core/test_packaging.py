"""The demo writes outside the source checkout, and the wheel holds only the intended packages.

``make demo`` once wrote ``rewardplug-demo/`` into the repository root (not ignored), and a wheel
built afterwards shipped it as a top-level folder of site-packages (package discovery
``rewardplug*`` matched it).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.core.blocked import ROOT, run_cli

PACKAGES = {
    "rewardplug",
    "rewardplug_code",
    "rewardplug_compose",
    "rewardplug_judge",
    "rewardplug_neural",
    "rewardplug_rubric",
}


def test_the_demo_writes_to_the_cache_inside_a_checkout_and_here_elsewhere(tmp_path, monkeypatch):
    from rewardplug.demo import default_out_dir

    monkeypatch.setenv("REWARDPLUG_CACHE_DIR", str(tmp_path / "cache"))
    assert default_out_dir(ROOT) == tmp_path / "cache" / "demo"
    assert default_out_dir(ROOT / "examples" / "stacks") == tmp_path / "cache" / "demo"
    elsewhere = tmp_path / "work"
    elsewhere.mkdir()
    assert default_out_dir(elsewhere) == elsewhere / "rewardplug-demo"


def test_make_demo_in_the_checkout_leaves_the_checkout_alone(tmp_path):
    """`make demo` runs `python -m rewardplug demo` in the repository root (MiniLM left out
    here, as on a core-only install, so that it takes seconds)."""
    before = (ROOT / "rewardplug-demo").exists()
    out = run_cli(
        tmp_path,
        "torch,transformers",
        "demo",
        cwd=ROOT,
        env={"REWARDPLUG_CACHE_DIR": str(tmp_path / "cache")},
    )
    assert out.returncode == 0, out.stderr
    written = tmp_path / "cache" / "demo"
    assert (written / "demo-scored.jsonl").is_file() and (written / "demo-tiers.png").is_file()
    assert f"wrote {written / 'demo-scored.jsonl'}" in out.stdout
    assert (ROOT / "rewardplug-demo").exists() == before


def test_an_old_demo_folder_is_ignored_by_git():
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    out = subprocess.run(
        ["git", "check-ignore", "-q", "rewardplug-demo/demo-scored.jsonl"], cwd=ROOT, timeout=30
    )
    assert out.returncode == 0


def _checkout_copy(target: Path) -> None:
    """The files of the working tree a build would see (tracked and untracked, not ignored)."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout.split(b"\0")
    for name in filter(None, (n.decode() for n in listed)):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def test_the_wheel_holds_only_the_intended_packages(tmp_path):
    """Built offline (no index, no build isolation) from a copy of the checkout in which an old
    demo run left its folder and a build left an egg-info."""
    pytest.importorskip("setuptools")
    pytest.importorskip("wheel")
    tree = tmp_path / "tree"
    _checkout_copy(tree)
    (tree / "rewardplug-demo").mkdir(exist_ok=True)
    (tree / "rewardplug-demo" / "demo-scored.jsonl").write_text("{}\n")
    (tree / "rewardplug_notes").mkdir()  # starts like a plugin, but is no package
    (tree / "rewardplug_notes" / "todo.md").write_text("x\n")
    offline = ["--no-deps", "--no-build-isolation", "--no-index", "-q"]
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", ".", *offline, "-w", str(tmp_path / "dist")],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("rewardplug-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names}
    version = wheel.name.split("-")[1]
    assert top == PACKAGES | {f"rewardplug-{version}.data", f"rewardplug-{version}.dist-info"}
    # every subpackage is still there (packages are found by their __init__.py)
    for package in ("rewardplug/integrations", "rewardplug/sources", "rewardplug_judge/backends"):
        assert f"{package}/__init__.py" in names
    assert not [n for n in names if "demo-scored" in n or "egg-info" in n]
    # PEP 561: type checkers read the core package's annotations only with this marker
    assert "rewardplug/py.typed" in names

"""A wheel install (`pip install .`, not editable) carries every bundled scenario.

The wheel is built from the tracked files, installed without dependencies into a
fresh virtual environment that borrows this one's packages (jax and the rest)
through a path file, and run from an empty folder, so only the installed
package can answer: every bundled scenario of every environment must load, and
`jaxmob info` must run.
"""
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run(*argv, cwd, timeout=600):
    proc = subprocess.run([str(a) for a in argv], capture_output=True, text=True, cwd=cwd, timeout=timeout)
    assert proc.returncode == 0, (argv, proc.stdout[-2000:], proc.stderr[-3000:])
    return proc.stdout


def test_the_wheel_installs_and_loads_every_bundled_scenario(tmp_path):
    source = tmp_path / "source"
    tracked = run("git", "ls-files", cwd=REPO).split("\n")
    for name in filter(None, tracked):
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", tmp_path / "dist", source, cwd=tmp_path,
        timeout=900)
    wheel = next((tmp_path / "dist").glob("jaxmob-*.whl"))
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    site = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=tmp_path).strip())
    (site / "borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")  # jax & co., not jaxmob's source
    run(sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-deps", wheel, cwd=tmp_path)
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    script = (
        "import jaxmob, pathlib\n"
        "from jaxmob.core.registry import get, names\n"
        f"assert pathlib.Path(jaxmob.__file__).is_relative_to({str(venv)!r}), jaxmob.__file__\n"
        "for env in names():\n"
        "    task = get(env)\n"
        "    assert task.scenarios(), env\n"
        "    for name in task.scenarios():\n"
        "        task.load(name)\n"
        "        print(env, name)\n")
    loaded = run(python, "-c", script, cwd=empty).split("\n")
    for env in ("rebalance", "taxi", "amod", "routing", "parking"):
        assert any(line.startswith(env + " ") for line in loaded), env
    assert "parking melbourne" in loaded and "rebalance manhattan-106" in loaded and "routing sf_cabspotting" in loaded
    assert "== env parking" in run(python, "-m", "jaxmob", "info", cwd=empty)

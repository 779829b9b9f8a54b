"""Package `kubectl tier0` for krew: `python -m tier0_dev.krew` (what `make kubectl-plugin-dist` runs).

krew installs a plugin from an archive per platform named in a plugin-index manifest, each with its
sha256. The plugin is Python, so an archive holds the tier0 package and its `kubectl` extra's
dependencies installed for that platform and CPython version (`pip install --target --platform`:
pydantic-core and aiohttp are compiled) and a launcher, `kubectl-tier0`, that runs them with the
user's `python3.X`. The manifest in the repository (kubectl/krew/tier0.yaml) carries placeholders;
this writes the archives and the manifest with their URIs and checksums into .run/krew/.
"""

import argparse
import hashlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "kubectl" / "krew" / "tier0.yaml"
PYTHON = "3.11"

# krew's platform (os/arch) -> the wheel platform tags pip may take for it.
WHEEL_PLATFORMS: dict[str, tuple[str, ...]] = {
    "linux/amd64": ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"),
    "linux/arm64": ("manylinux_2_28_aarch64", "manylinux_2_17_aarch64", "manylinux2014_aarch64"),
    "darwin/arm64": ("macosx_11_0_arm64", "macosx_10_12_universal2", "macosx_11_0_universal2"),
    "darwin/amd64": ("macosx_10_12_x86_64", "macosx_10_9_x86_64", "macosx_10_12_universal2"),
}

LAUNCHER = """#!/bin/sh
# kubectl-tier0 (krew): runs the bundled tier0_kubectl with CPython {python}, which its compiled
# dependencies were built for.
set -eu
here=$(cd "$(dirname "$(readlink -f "$0" 2>/dev/null || echo "$0")")" && pwd)
py=$(command -v python{python} || true)
if [ -z "$py" ]; then
  echo "error: kubectl tier0 needs python{python} on PATH" >&2
  exit 1
fi
PYTHONPATH="$here/lib" PYTHONNOUSERSITE=1 exec "$py" -m tier0_kubectl "$@"
"""


@dataclass(frozen=True)
class Archive:
    platform: str
    path: Path
    sha256: str

    @property
    def os(self) -> str:
        return self.platform.split("/")[0]

    @property
    def arch(self) -> str:
        return self.platform.split("/")[1]


def archive_name(version: str, platform: str) -> str:
    return f"kubectl-tier0-{version}-{platform.replace('/', '-')}.tar.gz"


def render(template: dict[str, Any], version: str, uri_base: str, archives: list[Archive]) -> dict[str, Any]:
    """The template manifest with this version and one platform entry per archive (pure)."""
    spec = dict(template["spec"])
    first = template["spec"]["platforms"][0]
    spec["version"] = version
    spec["platforms"] = [
        {
            **{k: v for k, v in first.items() if k not in ("selector", "uri", "sha256")},
            "selector": {"matchLabels": {"os": a.os, "arch": a.arch}},
            "uri": f"{uri_base.rstrip('/')}/{a.path.name}",
            "sha256": a.sha256,
        }
        for a in archives
    ]
    return {**template, "spec": spec}


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def build(platform: str, version: str, out: Path) -> Archive:
    """Install tier0[kubectl] for `platform` into a tree and pack it with the launcher."""
    if platform not in WHEEL_PLATFORMS:
        raise SystemExit(f"unknown platform {platform}: one of {', '.join(WHEEL_PLATFORMS)}")
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "kubectl-tier0"
        lib = tree / "lib"
        tags = [arg for tag in WHEEL_PLATFORMS[platform] for arg in ("--platform", tag)]
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--no-compile", "--target", str(lib), *tags]
            + ["--python-version", PYTHON, "--only-binary=:all:", "--implementation", "cp"]
            + ["-c", str(ROOT / "hack" / "requirements" / "dev.txt"), f"{ROOT}[kubectl]"],
            check=True,
        )
        shutil.rmtree(lib / "bin", ignore_errors=True)  # console scripts with this machine's paths
        launcher = tree / "kubectl-tier0"
        launcher.write_text(LAUNCHER.format(python=PYTHON))
        launcher.chmod(0o755)
        out.mkdir(parents=True, exist_ok=True)
        path = out / archive_name(version, platform)
        with tarfile.open(path, "w:gz") as tar:
            tar.add(tree, arcname="kubectl-tier0", filter=_reproducible)
    return Archive(platform, path, sha256(path))


def _reproducible(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = 0
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tier0_dev.krew", description=__doc__.splitlines()[0])
    parser.add_argument("--version", default="v0.1.0", help="the plugin's version (krew wants a v-prefixed semver)")
    parser.add_argument("--platforms", default="linux/amd64", help=f"comma-separated, of {', '.join(WHEEL_PLATFORMS)}")
    parser.add_argument("--uri-base", required=True, help="where the archives will be published (the release URL)")
    parser.add_argument("--out", type=Path, default=ROOT / ".run" / "krew")
    args = parser.parse_args(argv)
    template = yaml.safe_load(TEMPLATE.read_text())
    archives = [build(p.strip(), args.version, args.out) for p in args.platforms.split(",") if p.strip()]
    manifest = render(template, args.version, args.uri_base, archives)
    target = args.out / "tier0.yaml"
    target.write_text(yaml.safe_dump(manifest, sort_keys=False))
    for a in archives:
        print(f"{a.path}  sha256 {a.sha256}")
    print(f"{target}: the krew manifest (kubectl krew install --manifest={target} --archive={archives[0].path})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

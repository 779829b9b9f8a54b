"""The Docker engine of the kind path (`make docker-up`, `docker-down`, `docker-status`).

An engine that already answers `docker info` (the user's, a CI runner's) is used as it is: never
started, stopped or reconfigured here. Otherwise the project starts Debian's dockerd (docker.io
20.10, `hack/install-tools.sh --docker`) on its own socket, data root and state directory, so it
shares nothing with an engine the user may start later, and `make up` / `make test` never see it.
It is driven with its own client (/usr/bin/docker from the same package): the machine's newer
client (/usr/local/bin/docker, API 1.50) negotiates down to 1.41 too, but the pair is what was
tested together.

Nothing the engine runs is routed out of the machine: no docker0 bridge, no iptables rule of the
engine's (so no masquerade), ip_forward left as it is. kind's node reaches the machine on kind's
bridge and the machine reaches the API server through docker-proxy on loopback.

The machine's quirks are detected when the engine starts and adapted only when found (`up`):
see `privileged_fails`. `down` (and the first step of every `up`, for an engine killed with its
session) removes what the engine left: its containers, processes, mounts, cgroups, dead shim sockets.
"""

import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tier0_dev.node import host
from tier0_dev.procs import ROOT, StartupError, log_tail

DOCKERD = "/usr/sbin/dockerd"
ENGINE_CLIENT = "/usr/bin/docker"
CGROUP_PARENT = "tier0-docker"
RUNC_WRAPPER = ROOT / "hack" / "kind" / "tier0-runc"
PROBE_IMAGE = "tier0.local/engine-probe:1"
# The engine's own processes, found by their argv naming the engine's directories.
PROGRAMS = frozenset({"dockerd", "containerd", "containerd-shim-runc-v2"})
SHIM_SOCKETS = Path("/run/containerd/s")
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Paths dockerd 20.10 creates wherever its directories are (its trust key, its plugin directory) and
# that kind's node bind-mounts (/lib/modules, created empty when the machine has none); `down`
# removes those the machine did not have before, deepest first.
CREATED_PATHS = (
    Path("/etc/docker/key.json"),
    Path("/run/docker/plugins"),
    Path("/run/docker"),
    Path("/lib/modules"),
)


def log(msg: str) -> None:
    print(f"\033[1m[docker]\033[0m {msg}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Layout:
    """The engine's directories: `lib` persists (images, the node image), `run` is the live state."""

    lib: Path
    run: Path

    @classmethod
    def default(cls) -> "Layout":
        return cls(
            Path(os.environ.get("TIER0_KIND_DIR", "/var/lib/tier0-kind")),
            Path(os.environ.get("TIER0_KIND_RUN_DIR", "/run/tier0-kind")),
        )

    @property
    def data(self) -> Path:
        return self.lib / "data"

    @property
    def log(self) -> Path:
        return self.lib / "dockerd.log"

    @property
    def host_before(self) -> Path:
        """What the machine had before the first start (survives a killed engine; removed by down)."""
        return self.lib / "host-before.json"

    @property
    def sock(self) -> Path:
        return self.run / "docker.sock"

    @property
    def docker_host(self) -> str:
        return f"unix://{self.sock}"

    @property
    def pidfile(self) -> Path:
        return self.run / "dockerd.pid"

    @property
    def exec_root(self) -> Path:
        return self.run / "exec"

    @property
    def config(self) -> Path:
        return self.run / "daemon.json"

    @property
    def bin(self) -> Path:
        """`docker` (the engine's client, first on kind's PATH) and the runc wrapper when installed."""
        return self.run / "bin"

    @property
    def adaptations(self) -> Path:
        return self.run / "adaptations.json"


@dataclass(frozen=True)
class Engine:
    """The engine the kind path talks to: how to reach it, with which client, and whose it is."""

    docker_host: str  # "" for the client's own default
    client: str
    ours: bool
    version: str

    def env(self) -> dict[str, str]:
        """The environment for `docker` and `kind` (which runs `docker` from PATH)."""
        env = dict(os.environ)
        if self.docker_host:
            env["DOCKER_HOST"] = self.docker_host
        env["PATH"] = f"{Path(self.client).parent}{os.pathsep}{env.get('PATH', '')}"
        return env

    def docker(
        self, *args: str, check: bool = True, timeout: float = 600, stdin: bytes | None = None
    ) -> subprocess.CompletedProcess[str]:
        out = subprocess.run(
            [self.client, *args],
            capture_output=True,
            env=self.env(),
            timeout=timeout,
            input=stdin,
        )
        res = subprocess.CompletedProcess(
            out.args, out.returncode, out.stdout.decode(errors="replace"), out.stderr.decode(errors="replace")
        )
        if check and res.returncode != 0:
            raise StartupError(f"docker {' '.join(args[:3])} ... failed: {res.stderr.strip()[-2000:]}")
        return res


def _server_version(client: str, docker_host: str | None) -> str | None:
    env = dict(os.environ)
    if docker_host is not None:
        env["DOCKER_HOST"] = docker_host
    try:
        out = subprocess.run(
            [client, "version", "--format", "{{.Server.Version}}"], capture_output=True, text=True, env=env, timeout=15
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else None


def ours(lay: Layout) -> Engine | None:
    """The project's engine, when it runs and answers."""
    if not lay.sock.exists() or not Path(ENGINE_CLIENT).exists():
        return None
    version = _server_version(ENGINE_CLIENT, lay.docker_host)
    return Engine(lay.docker_host, str(lay.bin / "docker"), True, version) if version else None


def users() -> Engine | None:
    """An engine someone else runs that answers the machine's `docker` as it is configured."""
    client = shutil.which("docker")
    if client is None:
        return None
    version = _server_version(client, None)
    return Engine(os.environ.get("DOCKER_HOST", ""), client, False, version) if version else None


def find(lay: Layout) -> Engine | None:
    return ours(lay) or users()


def daemon_config(lay: Layout, runtime: Path | None) -> dict[str, object]:
    """dockerd's configuration: its own directories and socket, no network of its own, no iptables."""
    conf: dict[str, object] = {
        "data-root": str(lay.data),
        "exec-root": str(lay.exec_root),
        "pidfile": str(lay.pidfile),
        "hosts": [lay.docker_host],
        # kind makes its own bridge network; the engine needs no docker0.
        "bridge": "none",
        # No rule of the engine's in the machine's iptables (so no masquerade out of it), and
        # ip_forward as the machine has it: published ports go through docker-proxy instead.
        "iptables": False,
        "ip-masq": False,
        "ip-forward": False,
        "userland-proxy": True,
        # Every container's cgroups under one parent, so `down` finds those of a killed engine.
        "cgroup-parent": f"/{CGROUP_PARENT}",
        "log-driver": "json-file",
        "log-opts": {"max-size": "10m", "max-file": "2"},
    }
    if runtime is not None:
        conf["runtimes"] = {"tier0-runc": {"path": str(runtime)}}
        conf["default-runtime"] = "tier0-runc"
    return conf


def _pid(lay: Layout) -> int | None:
    try:
        pid = int(lay.pidfile.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if host.alive(pid) and "dockerd" in host.cmdline(pid) else None


def _start(lay: Layout, runtime: Path | None) -> Engine:
    lay.data.mkdir(parents=True, exist_ok=True)
    lay.bin.mkdir(parents=True, exist_ok=True)
    client = lay.bin / "docker"
    if not client.is_symlink():
        client.symlink_to(ENGINE_CLIENT)
    lay.config.write_text(json.dumps(daemon_config(lay, runtime), indent=2))
    with lay.log.open("ab") as logf:
        # Its own session: the engine outlives the make that started it, until `make docker-down`.
        subprocess.Popen(
            [DOCKERD, "--config-file", str(lay.config)],
            # The system's programs only (containerd, runc, docker-proxy), not a checkout's .venv or .tools.
            env={**os.environ, "PATH": SYSTEM_PATH},
            stdin=subprocess.DEVNULL,
            stdout=logf,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        engine = ours(lay)
        if engine is not None:
            return engine
        time.sleep(0.2)
    raise StartupError(f"dockerd did not answer on {lay.sock} within 60 s; log {lay.log}:\n{log_tail(lay.log)}")


def _stop(lay: Layout) -> None:
    pid = _pid(lay)
    if pid is not None:
        # dockerd stops its containers on SIGTERM (up to its 15 s shutdown timeout), then containerd.
        host.kill([pid], grace=30.0)


def _probe_image(engine: Engine) -> str:
    """A one-file image (a static program that exits 0), imported: no registry is needed."""
    if engine.docker("image", "inspect", PROBE_IMAGE, check=False).returncode == 0:
        return PROBE_IMAGE
    with tempfile.TemporaryDirectory(prefix="tier0-probe-") as tmp:
        prog = Path(tmp) / "true"
        src = Path(tmp) / "true.c"
        src.write_text("int main(void) { return 0; }\n")
        subprocess.run(["gcc", "-Os", "-static", "-o", str(prog), str(src)], check=True, capture_output=True)
        archive = Path(tmp) / "probe.tar"
        with tarfile.open(archive, "w") as tar:
            tar.add(prog, arcname="true")
        engine.docker("import", str(archive), PROBE_IMAGE)
    return PROBE_IMAGE


def _run_probe(engine: Engine, *flags: str) -> subprocess.CompletedProcess[str]:
    return engine.docker(
        "run", "--rm", "--network", "none", "--log-driver", "none", *flags, _probe_image(engine), "/true", check=False
    )


def privileged_fails(engine: Engine) -> str | None:
    """Why `docker run --privileged` fails here, or None when it works.

    dockerd 20.10 gives a privileged container every capability the kernel knows; on a machine whose
    capability bounding set lacks some (this VM lacks CAP_SYS_RESOURCE) runc then fails with
    `unable to apply caps: operation not permitted`. kind's node containers are privileged."""
    plain = _run_probe(engine)
    if plain.returncode != 0:
        raise StartupError(f"the engine cannot run a container at all: {plain.stderr.strip()[-2000:]}")
    privileged = _run_probe(engine, "--privileged")
    return None if privileged.returncode == 0 else privileged.stderr.strip()[-600:]


def up(lay: Layout) -> Engine:
    """The engine the kind path uses: one that answers, else the project's, started and adapted."""
    found = find(lay)
    if found is not None:
        whose = "the project's" if found.ours else "an engine already running (left as it is)"
        log(f"using {whose}: Docker {found.version} at {found.docker_host or 'the default socket'}")
        return found
    if os.geteuid() != 0:
        raise StartupError("starting the project's Docker engine needs root (or start your own engine)")
    if not Path(DOCKERD).exists() or not Path(ENGINE_CLIENT).exists():
        raise StartupError(f"{DOCKERD} is missing: hack/install-tools.sh --docker (Debian's docker.io)")
    leftovers = clear(lay)
    if any(leftovers.values()):
        log(f"cleared what a stopped engine left: {leftovers}")
    _save_host_before(lay)
    start = time.monotonic()
    engine = _start(lay, runtime=None)
    _remove_containers(engine)
    adaptations: list[str] = []
    why = privileged_fails(engine)
    if why is not None:
        # Only here: a runc that drops the capabilities the machine cannot grant (hack/kind/tier0-runc).
        adaptations.append(f"runc wrapper {RUNC_WRAPPER.name}: `docker run --privileged` failed: {why}")
        log(f"docker run --privileged fails here ({why.splitlines()[0]}); restarting with {RUNC_WRAPPER.name}")
        _stop(lay)
        wrapper = lay.bin / RUNC_WRAPPER.name
        shutil.copy2(RUNC_WRAPPER, wrapper)
        engine = _start(lay, runtime=wrapper)
        still = privileged_fails(engine)
        if still is not None:
            raise StartupError(f"docker run --privileged still fails with {wrapper}: {still}")
    lay.adaptations.write_text(json.dumps(adaptations, indent=2))
    log(f"Docker {engine.version} up in {time.monotonic() - start:.1f} s on {lay.sock} (data {lay.data})")
    for a in adaptations:
        log(f"adapted: {a.splitlines()[0]}")
    return engine


def _save_host_before(lay: Layout) -> None:
    """Which of CREATED_PATHS the machine had before the engine first started."""
    if lay.host_before.exists():
        return  # from before an engine that was killed: keep the first record
    lay.lib.mkdir(parents=True, exist_ok=True)
    lay.host_before.write_text(json.dumps({str(p): p.exists() for p in CREATED_PATHS}))


def engine_pids(lay: Layout) -> set[int]:
    """The engine's processes (argv naming its directories), its containers' (its cgroup parent),
    and docker-proxy processes whose engine is gone."""
    marks = (str(lay.lib), str(lay.run))
    pids: set[int] = set()
    for procs in host.CGROUP_FS.glob(f"*/{CGROUP_PARENT}/**/cgroup.procs"):
        try:
            pids.update(int(p) for p in procs.read_text().split())
        except OSError:
            continue
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        argv = host.cmdline(pid)
        name = Path(argv.split(" ", 1)[0]).name
        if name in PROGRAMS and any(m in argv for m in marks):
            pids.add(pid)
        elif name == "docker-proxy" and "dockerd" not in host.cmdline(_ppid(pid)):
            pids.add(pid)
    return pids - {os.getpid(), os.getppid()}


def _ppid(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def clear(lay: Layout) -> dict[str, int]:
    """Everything a stopped or killed project engine left on the machine, removed."""
    found = {"processes": 0, "mounts": 0, "cgroups": 0, "shim sockets": 0, "paths": 0}
    for _ in range(3):  # shims can start a last process while they die
        pids = engine_pids(lay)
        if not pids:
            break
        found["processes"] += host.kill(pids, grace=5.0)
    found["mounts"] = host.unmount_under((lay.lib, lay.run))
    for root in host.CGROUP_FS.glob(f"*/{CGROUP_PARENT}"):
        for d in host.walk_bottom_up(root):
            try:
                d.rmdir()
                found["cgroups"] += 1
            except OSError:
                pass
    if SHIM_SOCKETS.is_dir():
        # containerd puts every shim's socket here whatever its state directory; a dead one is nobody's.
        for s in SHIM_SOCKETS.iterdir():
            if s.is_socket() and not host.listening(s):
                s.unlink()
                found["shim sockets"] += 1
        for d in (SHIM_SOCKETS, SHIM_SOCKETS.parent):
            try:
                d.rmdir()
            except OSError:
                pass
    if lay.host_before.exists():
        had = json.loads(lay.host_before.read_text())
        for path in CREATED_PATHS:
            if had.get(str(path), True):
                continue
            try:
                if path.is_dir() and not path.is_symlink():
                    path.rmdir()  # only when empty: anything else in it is not the engine's
                else:
                    path.unlink()
                found["paths"] += 1
            except OSError:
                pass
    if lay.run.exists():
        host.run("rm", "-rf", "--one-file-system", str(lay.run))
    return found


def _remove_containers(engine: Engine) -> None:
    """The project's engine keeps no container across a stop: a kind node stopped (or killed) with
    its engine would come back half-dead. At `down`, and at a start after an engine was killed."""
    ids = engine.docker("ps", "-aq").stdout.split()
    if ids:
        log(f"removing {len(ids)} container(s) of the project's engine")
        engine.docker("rm", "-f", "-v", *ids)
    engine.docker("network", "prune", "-f", check=False)
    engine.docker("volume", "prune", "-f", check=False)


def down(lay: Layout) -> int:
    """Stop the project's engine and remove what it left; an engine someone else runs is left alone."""
    pid = _pid(lay)
    engine = ours(lay)
    if engine is not None:
        _remove_containers(engine)
    if pid is not None:
        _stop(lay)
    found = clear(lay)
    lay.host_before.unlink(missing_ok=True)
    if pid is None and not any(found.values()):
        other = users()
        where = (other.docker_host or "the default socket") if other else ""
        note = f" (an engine someone else runs answers at {where}: left alone)" if other else ""
        log("the project's engine is not running" + note)
    else:
        log(f"the project's engine is stopped; removed {found}; images kept in {lay.data}")
    return 0


def status(lay: Layout) -> int:
    engine = find(lay)
    if engine is None:
        print("docker: no engine answers (make docker-up starts the project's)")
        return 1
    whose = "the project's" if engine.ours else "not the project's (left as it is)"
    print(f"docker: {engine.version} at {engine.docker_host or 'the default socket'}, {whose}; client {engine.client}")
    if engine.ours:
        adaptations = json.loads(lay.adaptations.read_text()) if lay.adaptations.exists() else []
        for a in adaptations:
            print(f"  adapted: {a.splitlines()[0]}")
        print(f"  data: {lay.data}  log: {lay.log}")
        print(f"  export DOCKER_HOST={lay.docker_host}  # and use {ENGINE_CLIENT}")
    print(engine.docker("ps", "-a").stdout.rstrip())
    return 0

"""The plugin's command line without a cluster: kubectl's connection flags before or after the
command, `--help` on every command, usage errors with exit code 2; and the krew manifest (the one in
the repository and the one `make kubectl-plugin-dist` renders) following krew's schema."""

from pathlib import Path

import pytest
import yaml

from tier0_dev import krew
from tier0_kubectl import cli, cluster

pytestmark = pytest.mark.unit

COMMANDS = ("status", "switchover", "pause", "resume", "history", "drill")


class TestArguments:
    def test_connection_flags_before_and_after_the_command(self) -> None:
        before = cli.parser().parse_args(["--kubeconfig", "k", "--context", "c", "-n", "ns", "status", "pair"])
        after = cli.parser().parse_args(["status", "pair", "--kubeconfig", "k", "--context", "c", "-n", "ns"])
        for args in (before, after):
            assert (args.kubeconfig, args.context, args.namespace, args.pair) == ("k", "c", "ns", "pair")
        defaults = cli.parser().parse_args(["-n", "ns", "history"])
        assert (defaults.namespace, defaults.kubeconfig, defaults.request_timeout, defaults.pair) == (
            "ns",
            None,
            10.0,
            None,
        )

    def test_switchover_takes_the_region_then_the_pair(self) -> None:
        args = cli.parser().parse_args(["switchover", "region2", "pair", "--timeout", "5"])
        assert (args.to, args.pair, args.timeout, args.no_wait) == ("region2", "pair", 5.0, False)

    @pytest.mark.parametrize("command", COMMANDS)
    def test_help_everywhere(self, command: str, capsys: pytest.CaptureFixture[str]) -> None:
        with pytest.raises(SystemExit) as done:
            cli.main([command, "--help"])
        assert done.value.code == 0
        out = capsys.readouterr().out
        assert out.startswith(f"usage: kubectl tier0 {command}") and "exit codes:" in out

    @pytest.mark.parametrize(
        "argv", [["nosuch"], ["status", "-o", "xml"], ["switchover"], ["drill", "--timeout", "soon"], []]
    )
    def test_usage_errors_exit_2(self, argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
        with pytest.raises(SystemExit) as done:
            cli.main(argv)
        assert done.value.code == 2
        assert "usage: kubectl tier0" in capsys.readouterr().err

    def test_no_configuration_is_an_error_not_a_traceback(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        missing = tmp_path / "nope"
        assert cli.main(["--kubeconfig", str(missing), "status"]) == 1
        assert capsys.readouterr().err.startswith(f"error: no usable Kubernetes configuration ({missing})")


class TestKrewManifest:
    def test_the_repositorys_manifest_follows_krews_schema(self) -> None:
        manifest = yaml.safe_load(krew.TEMPLATE.read_text())
        assert manifest["apiVersion"] == "krew.googlecontainertools.github.com/v1alpha2"
        assert manifest["kind"] == "Plugin" and manifest["metadata"]["name"] == "tier0"
        spec = manifest["spec"]
        assert spec["version"].startswith("v") and spec["shortDescription"] and spec["homepage"]
        for platform in spec["platforms"]:
            assert set(platform) == {"selector", "uri", "sha256", "files", "bin"}
            assert platform["bin"] == "kubectl-tier0" and len(platform["sha256"]) == 64
        assert "placeholders" in krew.TEMPLATE.read_text()  # and says how the real ones are made

    def test_rendered_with_one_entry_per_archive(self) -> None:
        template = yaml.safe_load(krew.TEMPLATE.read_text())
        archives = [
            krew.Archive("linux/amd64", Path("/x") / krew.archive_name("v1.2.3", "linux/amd64"), "a" * 64),
            krew.Archive("darwin/arm64", Path("/x") / krew.archive_name("v1.2.3", "darwin/arm64"), "b" * 64),
        ]
        out = krew.render(template, "v1.2.3", "https://example.test/rel/", archives)
        assert out["spec"]["version"] == "v1.2.3" and out["metadata"] == template["metadata"]
        platforms = out["spec"]["platforms"]
        assert [p["selector"] for p in platforms] == [
            {"matchLabels": {"os": "linux", "arch": "amd64"}},
            {"matchLabels": {"os": "darwin", "arch": "arm64"}},
        ]
        assert platforms[0]["uri"] == "https://example.test/rel/kubectl-tier0-v1.2.3-linux-amd64.tar.gz"
        assert [p["sha256"] for p in platforms] == ["a" * 64, "b" * 64]
        assert all(
            p["bin"] == "kubectl-tier0" and p["files"] == [{"from": "kubectl-tier0/*", "to": "."}] for p in platforms
        )

    def test_the_launcher_runs_the_package_with_the_python_it_was_built_for(self) -> None:
        text = krew.LAUNCHER.format(python=krew.PYTHON)
        assert text.startswith("#!/bin/sh") and "python3.11 -m" not in text
        assert 'exec "$py" -m tier0_kubectl "$@"' in text and "command -v python3.11" in text


class TestNamespace:
    async def test_the_contexts_namespace_as_kubectl_takes_it(self, tmp_path: Path) -> None:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
            "users": [{"name": "u", "user": {"token": "t"}}],
            "contexts": [
                {"name": "one", "context": {"cluster": "c", "user": "u", "namespace": "tier0"}},
                {"name": "two", "context": {"cluster": "c", "user": "u"}},
            ],
            "current-context": "one",
        }
        path = tmp_path / "kubeconfig"
        path.write_text(yaml.safe_dump(config))
        for context, given, namespace in ((None, None, "tier0"), ("two", None, "default"), ("two", "ns", "ns")):
            c = await cluster.Cluster.connect(str(path), context, given, 1.0)
            try:
                assert c.namespace == namespace
            finally:
                await c.close()
        with pytest.raises(cluster.PluginError, match="no usable Kubernetes configuration"):
            await cluster.Cluster.connect(str(tmp_path / "missing"), None, None, 1.0)

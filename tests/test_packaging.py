"""The install files and the RPM: tools/build-rpm.sh builds it once, rpm inspects it.

The RPM tests need Debian's ``rpm`` (rpmbuild, rpm2cpio) and ``cpio`` packages.
Without them they are skipped, except under CI (``CI`` set), where a missing tool
is a failure: the CI script is expected to install them.
"""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import monitor
from monitor.config import Endpoint, parse_config

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "recodex-monitor.spec"
BUILD_SCRIPT = ROOT / "tools" / "build-rpm.sh"
UNIT = ROOT / "systemd" / "recodex-monitor.service"
SYSUSERS = ROOT / "systemd" / "recodex-monitor.sysusers"
TMPFILES = ROOT / "systemd" / "recodex-monitor.tmpfiles"
CONFIG = ROOT / "install" / "config.yml"

EXEC_START = "/usr/bin/recodex-monitor -c /etc/recodex/monitor/config.yml"
CONFIG_PATH = "/etc/recodex/monitor/config.yml"
UNIT_PATH = "/etc/systemd/system/recodex-monitor.service"
SYSUSERS_PATH = "/usr/lib/sysusers.d/recodex-monitor.conf"
TMPFILES_PATH = "/usr/lib/tmpfiles.d/recodex-monitor.conf"
LOG_DIR = "/var/log/recodex"
LOG_FILE = "/var/log/recodex/monitor.log"

# Debian package providing each tool the RPM tests run.
TOOL_PACKAGES = {"rpmbuild": "rpm", "rpm": "rpm", "rpm2cpio": "rpm2cpio", "cpio": "cpio"}


def require_tools(*tools: str) -> None:
    for tool in tools:
        if shutil.which(tool) is None:
            message = f"{tool} not installed: .ci/run must install Debian's {TOOL_PACKAGES[tool]} package"
            if os.environ.get("CI"):
                pytest.fail(message)
            pytest.skip(message)


def rpm_query(*args: str) -> str:
    result = subprocess.run(["rpm", *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"rpm {' '.join(args)} failed:\n{result.stderr}"
    return result.stdout


def read_unit() -> configparser.ConfigParser:
    # systemd allows repeated keys (Documentation=); strict=False keeps the last one.
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # keys are case-sensitive
    parser.read(UNIT, encoding="utf-8")
    return parser


def spec_version() -> str:
    match = re.search(r"^Version:\s*(\S+)\s*$", SPEC.read_text(encoding="utf-8"), re.MULTILINE)
    assert match, f"no Version: line in {SPEC}"
    return match.group(1)


def runtime_dependencies() -> list[str]:
    """Canonical names of pyproject.toml's dependencies (extras dropped)."""
    tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11")
    with open(ROOT / "pyproject.toml", "rb") as stream:
        project = tomllib.load(stream)["project"]
    return [canonicalize_name(Requirement(text).name) for text in project["dependencies"]]


@pytest.fixture(scope="module")
def built_rpm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_tools("rpmbuild", "rpm")
    topdir = tmp_path_factory.mktemp("rpmbuild")
    result = subprocess.run(
        ["bash", str(BUILD_SCRIPT), str(topdir)], capture_output=True, text=True, timeout=600
    )
    if result.returncode != 0:
        pytest.fail(f"tools/build-rpm.sh failed ({result.returncode}):\n{result.stderr[-6000:]}")
    path = Path(result.stdout.strip().splitlines()[-1])
    assert path.is_file(), f"build-rpm.sh printed {path!r}, which is not a file"
    assert path.is_relative_to(topdir), f"{path} was not built in the given topdir {topdir}"
    return path


@pytest.fixture(scope="module")
def payload(built_rpm: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The RPM's files, unpacked with rpm2cpio | cpio."""
    require_tools("rpm2cpio", "cpio")
    root = tmp_path_factory.mktemp("payload")
    with subprocess.Popen(["rpm2cpio", str(built_rpm)], stdout=subprocess.PIPE) as rpm2cpio:
        cpio = subprocess.run(
            ["cpio", "-idm", "--quiet", "--no-absolute-filenames"],
            stdin=rpm2cpio.stdout,
            cwd=root,
            capture_output=True,
            timeout=60,
        )
    assert rpm2cpio.returncode == 0, "rpm2cpio failed"
    assert cpio.returncode == 0, f"cpio failed: {cpio.stderr.decode(errors='replace')}"
    return root


def site_packages(files: list[str]) -> str:
    """The site-packages directory holding the monitor package among the RPM's files."""
    for name in files:
        match = re.fullmatch(r"(/usr/lib/python3\.\d+/site-packages)/monitor/__init__\.py", name)
        if match:
            return match.group(1)
    raise AssertionError(f"no /usr/lib/python3.X/site-packages/monitor/__init__.py in {files}")


# --- the RPM -------------------------------------------------------------------------------


def test_rpm_is_noarch_with_the_package_version(built_rpm: Path) -> None:
    assert rpm_query("-qp", "--qf", "%{NAME} %{VERSION} %{ARCH}", str(built_rpm)) == (
        f"recodex-monitor {monitor.__version__} noarch"
    )
    assert built_rpm.name.endswith(".noarch.rpm")


def test_rpm_holds_the_documented_layout(built_rpm: Path) -> None:
    files = rpm_query("-qlp", str(built_rpm)).split()
    for expected in (
        "/usr/bin/recodex-monitor",
        "/usr/bin/recodex-monitor-send",
        CONFIG_PATH,
        UNIT_PATH,
        SYSUSERS_PATH,
        TMPFILES_PATH,
        LOG_DIR,
    ):
        assert expected in files
    sitelib = site_packages(files)
    modules = sorted(path.name for path in (ROOT / "monitor").glob("*.py"))
    assert modules, "no monitor/*.py in the source tree"
    for module in modules:
        assert f"{sitelib}/monitor/{module}" in files
    assert f"{sitelib}/recodex_monitor-{monitor.__version__}.dist-info/entry_points.txt" in files
    # rpm owns these files, not pip: no RECORD, and nothing naming the build directory.
    assert not [name for name in files if name.endswith(("/RECORD", "/direct_url.json"))]


def test_rpm_config_files_modes_and_owners(built_rpm: Path) -> None:
    assert CONFIG_PATH in rpm_query("-qcp", str(built_rpm)).split()
    listing = rpm_query(
        "-qp",
        "--qf",
        "[%{FILENAMES} %{FILEMODES:perms} %{FILEUSERNAME} %{FILEGROUPNAME} %{FILEFLAGS:fflags}\n]",
        str(built_rpm),
    )
    attributes = {line.split()[0]: line.split()[1:] for line in listing.splitlines()}
    mode, user, group, flags = attributes[CONFIG_PATH]
    assert (mode, group) == ("-rw-r-----", "recodex")
    assert user in ("root", "recodex")
    assert "c" in flags and "n" in flags, "config.yml must be %config(noreplace)"
    assert attributes[LOG_DIR][:3] == ["drwxr-x---", "recodex", "recodex"]
    assert attributes["/usr/bin/recodex-monitor"][0] == "-rwxr-xr-x"
    assert attributes[UNIT_PATH][0] == "-rw-r--r--"


def test_rpm_scriptlets_create_the_user_and_handle_the_unit(built_rpm: Path) -> None:
    scripts = rpm_query("-qp", "--scripts", str(built_rpm))
    sections = dict(
        re.findall(r"^(\w+) scriptlet \(using [^)]*\):\n(.*?)(?=^\w+ scriptlet \(|\Z)", scripts, re.M | re.S)
    )
    assert set(sections) >= {"preinstall", "postinstall", "preuninstall", "postuninstall"}
    assert "getent group recodex" in sections["preinstall"]
    assert "groupadd -r recodex" in sections["preinstall"]
    assert "getent passwd recodex" in sections["preinstall"]
    assert "useradd -r -g recodex" in sections["preinstall"]
    for name in ("postinstall", "preuninstall", "postuninstall"):
        assert "systemctl" in sections[name] or "recodex-monitor.service" in sections[name]


def test_rpm_requires_python_and_the_runtime_dependencies(built_rpm: Path) -> None:
    requires = {line.split()[0] for line in rpm_query("-qp", "--requires", str(built_rpm)).splitlines()}
    assert "python3" in requires
    for name in runtime_dependencies():
        assert f"python3dist({name})" in requires


def test_rpm_payload_runs_and_matches_the_source_files(payload: Path) -> None:
    files = sorted("/" + str(path.relative_to(payload)) for path in payload.rglob("*"))
    sitelib = payload / site_packages(files).lstrip("/")
    script = payload / "usr" / "bin" / "recodex-monitor"
    assert script.read_text(encoding="utf-8").splitlines()[0] == "#!/usr/bin/python3"

    # The installed script, run by this interpreter (it has the dependencies), must find
    # the monitor package in the payload, not in the source tree.
    env = {**os.environ, "PYTHONPATH": str(sitelib)}
    version = subprocess.run(
        [sys.executable, str(script), "--version"],
        capture_output=True,
        text=True,
        env=env,
        cwd=payload,
        timeout=60,
    )
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"recodex-monitor {monitor.__version__}"
    where = subprocess.run(
        [sys.executable, "-c", "import monitor; print(monitor.__file__)"],
        capture_output=True,
        text=True,
        env=env,
        cwd=payload,
        timeout=60,
    )
    assert where.stdout.strip() == str(sitelib / "monitor" / "__init__.py"), where.stderr

    for installed, source in (
        (CONFIG_PATH, CONFIG),
        (UNIT_PATH, UNIT),
        (SYSUSERS_PATH, SYSUSERS),
        (TMPFILES_PATH, TMPFILES),
    ):
        assert (payload / installed.lstrip("/")).read_bytes() == source.read_bytes(), installed


# --- the spec and the install files --------------------------------------------------------


def test_spec_version_is_the_package_version() -> None:
    assert spec_version() == monitor.__version__


def test_spec_requires_every_runtime_dependency() -> None:
    text = SPEC.read_text(encoding="utf-8")
    for name in runtime_dependencies():
        assert re.search(rf"^Requires:\s+python3dist\({re.escape(name)}\)", text, re.MULTILINE), name


def test_unit_runs_the_monitor_as_recodex() -> None:
    service = read_unit()["Service"]
    assert service["ExecStart"] == EXEC_START
    assert service["User"] == "recodex"
    assert service["Group"] == "recodex"
    assert service["Type"] == "simple"
    assert service["Restart"] == "on-failure"
    # recodex-monitor exits with 2 on an invalid configuration file.
    assert service["RestartPreventExitStatus"] == "2"
    assert int(service["LimitNOFILE"]) >= 10_000 + 1_000  # default max_connections + headroom
    assert service["ProtectSystem"] == "strict"
    assert LOG_DIR in service["ReadWritePaths"].split()
    assert service["CapabilityBoundingSet"] == ""
    assert service["NoNewPrivileges"] == "yes"
    assert read_unit()["Install"]["WantedBy"] == "multi-user.target"


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    units = Path("/usr/lib/systemd/system")
    if shutil.which("systemd-analyze") is None or not (units / "sysinit.target").exists():
        message = "systemd-analyze or systemd's own units not installed: .ci/run must install systemd"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    # An image of the installed system: systemd's units, the executable, our unit.
    root = tmp_path / "root"
    shutil.copytree(units, root / "usr" / "lib" / "systemd" / "system", symlinks=True)
    executable = root / "usr" / "bin" / "recodex-monitor"
    executable.parent.mkdir(parents=True)
    executable.write_text("#!/bin/sh\n")
    executable.chmod(0o755)
    unit = root / UNIT_PATH.lstrip("/")
    unit.parent.mkdir(parents=True)
    shutil.copy(UNIT, unit)
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", f"--root={root}", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    # Unknown or invalid settings are only warnings: any output is a problem.
    output = result.stderr + result.stdout
    assert result.returncode == 0 and not output, f"systemd-analyze verify: {output}"


def test_sysusers_and_tmpfiles_match_the_unit_and_config() -> None:
    entries = [
        line.split()
        for line in SYSUSERS.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert [entry[:2] for entry in entries] == [["u", "recodex"]]
    directories = [
        line.split()
        for line in TMPFILES.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert directories == [["d", LOG_DIR, "0750", "recodex", "recodex", "-"]]
    assert os.path.dirname(yaml.safe_load(CONFIG.read_text(encoding="utf-8"))["logger"]["file"]) == LOG_DIR


def test_install_config_is_the_original_default(tmp_path: Path) -> None:
    raw = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    assert raw["logger"]["file"] == LOG_FILE
    # parse_config opens the log file for appending: point it somewhere writable here.
    raw["logger"]["file"] = str(tmp_path / "monitor.log")
    config, warnings = parse_config(raw, source=str(CONFIG))
    assert warnings == []
    assert config.websocket_uri == Endpoint("127.0.0.1", 4567)
    assert config.zeromq_uri == Endpoint("127.0.0.1", 7894)
    assert (config.logger.level, config.logger.max_size, config.logger.rotations) == ("info", 1048576, 3)
    assert set(raw) == {"websocket_uri", "zeromq_uri", "logger"}

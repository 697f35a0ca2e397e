"""Coney as a service: the Dockerfile and docker-compose.yml (there is no
Docker engine here, so the compose file is checked for its structure and
the Dockerfile's build and start commands are run outside Docker, on a
copy of the repository), `make install` with PREFIX and DESTDIR, and the
systemd unit."""

import os
import re
import shlex
import shutil
import subprocess

import pika
import pytest
import yaml

from coney_util import SLOW, TIMEOUT, free_port, wait_port

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
PORTS = {5672, 5671, 1883, 8883, 15672, 15692}

pytestmark = pytest.mark.usefixtures("coney_bin")


# ------------------------------------------------------------ the Dockerfile

def dockerfile():
    """[(stage name or None, base image, [(instruction, argument text)])]."""
    with open(os.path.join(REPO, "Dockerfile")) as f:
        text = re.sub(r"\\\n", " ", f.read())
    stages = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        word = word.upper()
        if word == "FROM":
            parts = rest.split()
            stages.append((parts[2] if len(parts) > 2 else None, parts[0], []))
        else:
            stages[-1][2].append((word, rest.strip()))
    return stages


def exec_form(arg):
    """A JSON exec-form argument (CMD ["a", "b"]) as a list."""
    import json
    return json.loads(arg)


def deps_packages():
    with open(os.path.join(REPO, "scripts", "deps.sh")) as f:
        text = f.read()
    block = text[text.index("PACKAGES=("):text.index(")\n", text.index("PACKAGES=("))]
    words = []
    for line in block.splitlines()[1:]:
        words += line.split("#")[0].split()
    return set(words)


def test_dockerfile_structure():
    stages = dockerfile()
    assert len(stages) == 2, "a build stage and a run stage"
    (bname, bbase, build), (_, rbase, run) = stages
    assert bbase == "debian:bookworm" and bname == "build"
    assert rbase == "debian:bookworm-slim"
    # the build stage installs what scripts/deps.sh installs for the build
    apt = " ".join(a for w, a in build if w == "RUN" and "apt-get install" in a)
    wanted = set(re.findall(r"\b(lib[\w.+-]+-dev|gcc|make|pkg-config)\b", apt))
    assert wanted and wanted <= deps_packages(), wanted - deps_packages()
    assert any(w == "RUN" and "packaging/build.sh" in a for w, a in build)
    # the run stage: non-root, a volume, the ports, a health check, a command
    runs = dict((w, a) for w, a in run)
    assert "useradd" in " ".join(a for w, a in run if w == "RUN")
    assert runs["USER"] == "coney"
    assert runs["VOLUME"] == "/var/lib/coney"
    assert set(int(p) for p in runs["EXPOSE"].split()) == PORTS
    assert "HEALTHCHECK" in runs and "health" in runs["HEALTHCHECK"]
    cmd = exec_form(runs["CMD"])
    assert cmd[0] == "coney" and "/var/lib/coney" in cmd
    for w, a in run:
        if w == "COPY" and not a.startswith("--from"):
            assert os.path.exists(os.path.join(REPO, a.split()[0])), a
    with open(os.path.join(REPO, ".dockerignore")) as f:
        ignored = f.read().split()
    assert "build" in ignored, "a host build must not reach the image"


def copy_repo(dst):
    """The repository's files as `COPY . .` would see them (tracked and
    untracked, without build output)."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO,
                           check=True, capture_output=True, text=True).stdout.splitlines()
    for f in files:
        if f.startswith(("build/", "data/")) or "/node_modules/" in f:
            continue
        src = os.path.join(REPO, f)
        if not os.path.isfile(src):
            continue
        os.makedirs(os.path.join(dst, os.path.dirname(f)), exist_ok=True)
        shutil.copy2(src, os.path.join(dst, f))


@pytest.mark.timeout(600)
def test_dockerfile_build_and_start_commands_run_outside_docker(tmp_path):
    (_, _, build), (_, _, run) = dockerfile()
    src, root, data = tmp_path / "src", tmp_path / "root", tmp_path / "data"
    copy_repo(src)
    data.mkdir()

    # the build stage's own commands (apt-get is the host's business: deps.sh)
    for w, a in build:
        if w == "RUN" and "apt-get" not in a:
            cmd = a.replace("/out", str(root))
            r = subprocess.run(cmd, shell=True, cwd=src, capture_output=True, text=True,
                               timeout=500 * SLOW)
            assert r.returncode == 0, "%s failed:\n%s%s" % (cmd, r.stdout, r.stderr)
    assert os.access(root / "usr" / "bin" / "coney", os.X_OK)

    # the run stage's files, with / as root
    def host(path):
        return str(root) + path if path.startswith(("/etc/", "/usr/")) else \
            str(data) + path[len("/var/lib/coney"):] if path.startswith("/var/lib/coney") \
            else path
    for w, a in run:
        if w == "COPY" and not a.startswith("--from"):
            s, d = a.split()
            os.makedirs(os.path.dirname(host(d)), exist_ok=True)
            text = open(src / s).read()
            # paths inside the config are paths in the image
            text = re.sub(r"/etc/coney/\S+", lambda m: host(m.group(0)), text)
            open(host(d), "w").write(text)
    runs = dict((w, a) for w, a in run)

    def command(argv):
        return [str(root / "usr" / "bin" / argv[0])] + [host(x) for x in argv[1:]]
    port, mqtt, http, prom = free_port(), free_port(), free_port(), free_port()
    argv = command(exec_form(runs["CMD"])) + [
        "--port", str(port), "--mqtt-port", str(mqtt), "--management-port", str(http),
        "--prometheus-port", str(prom)]
    log = open(tmp_path / "coney.log", "wb")
    proc = subprocess.Popen(argv, cwd=data, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    try:
        assert wait_port("127.0.0.1", port, 20 * SLOW, proc), open(tmp_path / "coney.log").read()
        # the health check, as the image runs it
        health = runs["HEALTHCHECK"]
        hc = exec_form(health[health.index("CMD") + 3:].strip())
        r = subprocess.run(command(hc), capture_output=True, text=True, timeout=TIMEOUT)
        assert r.returncode == 0, r.stdout + r.stderr
        # the compose file's producer and consumer, against it
        env = dict(os.environ, AMQP_URL="amqp://app:app-secret@127.0.0.1:%d/%%2F" % port,
                   COUNT="3", INTERVAL="0")
        for script in ("producer.py", "consumer.py"):
            r = subprocess.run(["/usr/bin/python3", str(src / "packaging" / "docker" / script)],
                               env=env, capture_output=True, text=True, timeout=TIMEOUT * 3)
            assert r.returncode == 0, r.stdout + r.stderr
        assert r.stdout.count("got ") == 3, r.stdout
    finally:
        proc.terminate()
        rc = proc.wait(timeout=15 * SLOW)
        log.close()
    assert rc == 0, open(tmp_path / "coney.log").read()
    assert "load_definitions: imported" in open(tmp_path / "coney.log").read()


# ------------------------------------------------------------ docker-compose.yml

def test_compose_file_structure():
    with open(os.path.join(REPO, "docker-compose.yml")) as f:
        doc = yaml.safe_load(f)
    services = doc["services"]
    assert {"coney", "producer", "consumer"} <= set(services)
    coney = services["coney"]
    assert coney["build"] == "."
    published = {int(str(p).split(":")[-1]) for p in coney["ports"]}
    assert {5672, 1883, 15672} <= published <= PORTS
    mounts = {}
    for v in coney["volumes"]:
        s, d = v.split(":")[:2]
        mounts[d] = s
    assert mounts["/var/lib/coney"] in doc["volumes"], "the data lives in a named volume"
    for target in ("/etc/coney/coney.conf", "/etc/coney/definitions.json"):
        assert os.path.isfile(os.path.join(REPO, mounts[target])), target
    with open(os.path.join(REPO, mounts["/etc/coney/coney.conf"])) as f:
        assert "load_definitions = /etc/coney/definitions.json" in f.read()
    assert "health" in coney["healthcheck"]["test"]
    for name in ("producer", "consumer"):
        s = services[name]
        assert s["depends_on"]["coney"]["condition"] == "service_healthy"
        assert "pika" in " ".join(s["command"])
        assert "@coney:5672" in s["environment"]["AMQP_URL"]
        for v in s["volumes"]:
            assert os.path.isfile(os.path.join(REPO, v.split(":")[0])), v
    for v in coney.get("environment", {}):
        assert v.startswith("CONEY_")


def test_compose_config_validates(coney_bin):
    conf = os.path.join(REPO, "packaging", "docker", "coney.conf")
    r = subprocess.run([coney_bin, "--validate-config", conf], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


# ------------------------------------------------------------ make install

def make_install(tmp_path, **vars):
    args = ["make", "-s", "-C", REPO, "install"] + ["%s=%s" % kv for kv in vars.items()]
    r = subprocess.run(args, capture_output=True, text=True, timeout=300 * SLOW)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.timeout(300)
def test_make_install_tree(tmp_path):
    dest = tmp_path / "dest"
    make_install(tmp_path, DESTDIR=dest, PREFIX="/usr")
    for exe in ("usr/bin/coney", "usr/bin/coney-ctl"):
        assert os.access(dest / exe, os.X_OK), exe
    for f in ("etc/coney/coney.conf", "usr/lib/systemd/system/coney.service",
              "usr/lib/sysusers.d/coney.conf", "usr/share/doc/coney/coney.conf.example",
              "usr/share/doc/coney/README.md", "usr/share/doc/coney/configuration.md",
              "usr/share/doc/coney/quickstart.md", "usr/share/doc/coney/operations.md",
              "usr/share/doc/coney/compatibility.md"):
        assert (dest / f).is_file(), f
    r = subprocess.run([str(dest / "usr/bin/coney"), "--version"], capture_output=True,
                       text=True)
    assert r.returncode == 0 and r.stdout.startswith("coney ")
    unit = (dest / "usr/lib/systemd/system/coney.service").read_text()
    assert "ExecStart=/usr/bin/coney --config /etc/coney/coney.conf" in unit
    # an installed config is the user's: a second install keeps it
    (dest / "etc/coney/coney.conf").write_text("heartbeat = 10\n")
    make_install(tmp_path, DESTDIR=dest, PREFIX="/usr")
    assert (dest / "etc/coney/coney.conf").read_text() == "heartbeat = 10\n"

    local = tmp_path / "local"
    make_install(tmp_path, DESTDIR=local, PREFIX="/usr/local")
    assert os.access(local / "usr/local/bin/coney", os.X_OK)
    assert (local / "usr/local/etc/coney/coney.conf").is_file()
    unit = (local / "usr/local/lib/systemd/system/coney.service").read_text()
    assert "ExecStart=/usr/local/bin/coney --config /usr/local/etc/coney/coney.conf" in unit


# ------------------------------------------------------------ the systemd unit

def unit_settings(text):
    out = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            k, _, v = line.partition("=")
            out.setdefault(k.strip(), []).append(v.strip())
    return out


def test_systemd_unit_is_hardened():
    with open(os.path.join(REPO, "packaging", "coney.service")) as f:
        s = unit_settings(f.read())
    one = {k: v[-1] for k, v in s.items()}
    assert one["User"] == "coney"
    assert one["ProtectSystem"] == "strict"
    assert "/var/lib/coney" in one["ReadWritePaths"].split()
    for k in ("NoNewPrivileges", "PrivateTmp", "ProtectHome", "PrivateDevices",
              "ProtectKernelTunables", "ProtectControlGroups", "RestrictSUIDSGID"):
        assert one[k] == "yes", k
    assert one["StateDirectory"] == "coney"
    argv = shlex.split(one["ExecStart"])
    assert argv[argv.index("--data-dir") + 1] == "/var/lib/coney"
    assert "kill -HUP" in one["ExecReload"]
    assert one["WantedBy"] == "multi-user.target"


@pytest.mark.timeout(300)
def test_systemd_analyze_verify(tmp_path):
    tool = shutil.which("systemd-analyze")
    if not tool:
        pytest.skip("systemd-analyze is not installed")
    # installed under a real prefix, so ExecStart names an existing binary
    prefix = tmp_path / "prefix"
    make_install(tmp_path, PREFIX=prefix)
    unit = prefix / "lib" / "systemd" / "system" / "coney.service"
    r = subprocess.run([tool, "verify", str(unit)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and not r.stderr.strip(), r.stdout + r.stderr
    r = subprocess.run([tool, "security", "--offline=yes", str(unit)], capture_output=True,
                       text=True, timeout=60)
    if r.returncode == 0:
        m = re.search(r"Overall exposure level for coney.service: ([\d.]+)", r.stdout)
        assert m and float(m.group(1)) < 3.0, r.stdout[-500:]

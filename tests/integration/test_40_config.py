"""The config file as an operator meets it (docs/configuration.md): the
example file starts a broker, every key the parser knows is documented
and accepted, bad files are refused with file, line and key, CONEY_*
environment variables override the file, --validate-config, the
definitions imported at boot, and the log file with its signals."""

import json
import os
import re
import signal
import subprocess
import time

import pika
import pytest

from coney_util import (SLOW, TIMEOUT, connection_params, free_port, get_one, start_broker,
                        uname, wait_for)

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
EXAMPLE = os.path.join(REPO, "coney.conf.example")
CONFIG_DOC = os.path.join(REPO, "docs", "configuration.md")

pytestmark = pytest.mark.usefixtures("coney_bin")


def config_keys(coney_bin):
    """`coney --config-keys`: {name: (default, env, example, meaning)}."""
    out = subprocess.run([coney_bin, "--config-keys"], check=True, capture_output=True,
                         text=True).stdout
    keys = {}
    for line in out.splitlines():
        name, default, env, example, meaning = line.split("\t")
        keys[name] = (default, env, example, meaning)
    return keys


def example_lines():
    """The example file's commented-out settings: [(key, value)]."""
    out = []
    with open(EXAMPLE) as f:
        for line in f:
            m = re.match(r"^# (\S+) = (.*)$", line.rstrip("\n"))
            if m:
                out.append((m.group(1), m.group(2)))
    return out


def run(coney_bin, *args, env=None, timeout=None):
    penv = dict(os.environ)
    penv.update(env or {})
    return subprocess.run([coney_bin] + list(args), capture_output=True, text=True, env=penv,
                          timeout=timeout or 20 * SLOW, stdin=subprocess.DEVNULL)


def start_refused(coney_bin, tmp_path, conf, env=None):
    """Start with conf and every port free; the broker must exit at once,
    without listening. Returns (exit code, stderr)."""
    port = free_port()
    args = ["--config", str(conf), "--data-dir", str(tmp_path / "data"), "--port", str(port),
            "--mqtt-port", "0", "--management-port", "0", "--prometheus-port", "0"]
    r = run(coney_bin, *args, env=env)
    return r.returncode, r.stderr


# ------------------------------------------------------------ the example and the table

def test_example_config_starts_the_broker(coney_bin):
    b = start_broker(coney_bin, extra_args=["--config", EXAMPLE])
    try:
        with pika.BlockingConnection(b.params()) as c:
            ch = c.channel()
            q = ch.queue_declare("", exclusive=True).method.queue
            ch.basic_publish("", q, b"from the example config")
            assert get_one(ch, q, auto_ack=True)[2] == b"from the example config"
        assert b.stop() == 0
    finally:
        b.cleanup()


def test_every_key_is_in_the_example_and_the_docs_and_nothing_else(coney_bin):
    keys = config_keys(coney_bin)
    shown = example_lines()
    names = [k for k, _ in shown]
    assert len(names) == len(set(names)), "a key is listed twice in coney.conf.example"
    assert set(names) == set(keys), (
        "coney.conf.example and the key table differ: only in the table %s, only in the "
        "example %s" % (sorted(set(keys) - set(names)), sorted(set(names) - set(keys))))
    for name, value in shown:
        default, _, example, _ = keys[name]
        assert value == (default or example), "%s: example says %r, the table %r" % (
            name, value, default or example)
    with open(CONFIG_DOC) as f:
        doc = f.read()
    doc = doc[doc.index("<!-- keys:"):doc.index("<!-- end of keys -->")]
    documented = set(re.findall(r"^\| `([^`]+)` \|", doc, re.M))
    assert documented == set(keys), (
        "docs/configuration.md and the key table differ: undocumented %s, unknown %s"
        % (sorted(set(keys) - documented), sorted(documented - set(keys))))
    r = subprocess.run(["/usr/bin/python3", os.path.join(REPO, "scripts", "config-docs.py"),
                        "--check", coney_bin], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_environment_names_follow_the_rule_and_are_unique(coney_bin):
    keys = config_keys(coney_bin)
    envs = [env for _, env, _, _ in keys.values() if env]
    assert len(envs) == len(set(envs))
    for name, (_, env, _, meaning) in keys.items():
        if not env:
            assert meaning.startswith("older name of "), name
            continue
        bare = name[len("coney."):] if name.startswith("coney.") else name
        assert env == "CONEY_" + re.sub(r"[.-]", "_", bare).upper()


def test_every_documented_key_is_accepted(coney_bin, tmp_path):
    conf = tmp_path / "all.conf"
    conf.write_text("".join("%s = %s\n" % kv for kv in example_lines()))
    r = run(coney_bin, "--validate-config", str(conf))
    assert r.returncode == 0, r.stderr
    assert "ok" in r.stdout
    # and one by one, each on its own
    for key, value in example_lines():
        one = tmp_path / "one.conf"
        one.write_text("%s = %s\n" % (key, value))
        if key.startswith(("listeners.ssl.", "mqtt.listeners.ssl.", "management.ssl.port")):
            one.write_text("%s = %s\nssl_options.certfile = c.pem\nssl_options.keyfile = k.pem\n"
                           % (key, value))
        r = run(coney_bin, "--validate-config", str(one))
        assert r.returncode == 0, "%s = %s: %s" % (key, value, r.stderr)


def test_rabbitmq_names_and_coney_aliases_are_the_same_settings(coney_bin, tmp_path):
    conf = tmp_path / "old.conf"
    conf.write_text("storage.sync = batch\nstorage.sync_interval = 50\n"
                    "queue_memory_budget = 1MB\nmanagement.listener.port = none\n"
                    "listeners.tcp.local = 127.0.0.1:5999\n")
    assert run(coney_bin, "--validate-config", str(conf)).returncode == 0
    b = start_broker(coney_bin, extra_args=["--config", str(conf)], http_port_flag=False)
    try:
        assert "sync batch" in b.log()
        with pika.BlockingConnection(b.params()):
            pass
        assert b.stop() == 0
    finally:
        b.cleanup()


# ------------------------------------------------------------ bad files

def test_bad_value_is_refused_with_file_line_and_key(coney_bin, tmp_path):
    conf = tmp_path / "bad.conf"
    conf.write_text("# a comment\nheartbeat = 30\n\nframe_max = 12\n")
    rc, err = start_refused(coney_bin, tmp_path, conf)
    assert rc == 2, err
    assert "%s:4: invalid value '12' for key 'frame_max'" % conf in err
    assert "not starting" in err


def test_unknown_key_is_refused(coney_bin, tmp_path):
    conf = tmp_path / "typo.conf"
    conf.write_text("heartbeat = 30\nhearbeat = 30\n")
    rc, err = start_refused(coney_bin, tmp_path, conf)
    assert rc == 2, err
    assert "%s:2: unknown key 'hearbeat'" % conf in err


def test_every_problem_is_reported_at_once(coney_bin, tmp_path):
    conf = tmp_path / "many.conf"
    conf.write_text("listeners.tcp.default = seventy\nno equals sign here\n"
                    "mqtt.prefetch = 0\nnot.a.key = 1\nlog.console.level = loud\n")
    rc, err = start_refused(coney_bin, tmp_path, conf)
    assert rc == 2
    for line in (1, 2, 3, 4, 5):
        assert "%s:%d:" % (conf, line) in err, err
    assert "5 problems" in err


def test_tls_listener_without_certificate_is_refused(coney_bin, tmp_path):
    conf = tmp_path / "tls.conf"
    conf.write_text("listeners.ssl.default = %d\n" % free_port())
    rc, err = start_refused(coney_bin, tmp_path, conf)
    assert rc == 2
    assert "ssl_options.certfile" in err


def test_missing_config_file_is_refused(coney_bin, tmp_path):
    rc, err = start_refused(coney_bin, tmp_path, tmp_path / "nope.conf")
    assert rc == 2
    assert "nope.conf" in err


# ------------------------------------------------------------ --validate-config

def test_validate_config(coney_bin, tmp_path):
    good = tmp_path / "good.conf"
    good.write_text("listeners.tcp.default = 127.0.0.1:5673\ndefault_user = admin\n"
                    "disk_free_limit.absolute = 1GB\nlog.file = /var/log/coney/coney.log\n")
    r = run(coney_bin, "--validate-config", str(good))
    assert r.returncode == 0
    assert r.stdout.strip() == "coney: %s: ok" % good

    bad = tmp_path / "bad.conf"
    bad.write_text("heartbeat = -1\nssl_options.verify = maybe\n")
    r = run(coney_bin, "--validate-config", str(bad))
    assert r.returncode == 1
    assert "%s:1: invalid value '-1' for key 'heartbeat'" % bad in r.stderr
    assert "%s:2: invalid value 'maybe' for key 'ssl_options.verify'" % bad in r.stderr
    assert "2 problems" in r.stderr

    r = run(coney_bin, "--validate-config", str(tmp_path / "missing.conf"))
    assert r.returncode == 1
    assert "cannot open" in r.stderr


# ------------------------------------------------------------ the environment

def test_environment_overrides_the_file(coney_bin, tmp_path):
    conf = tmp_path / "env.conf"
    conf.write_text("default_user = from-file\ndefault_pass = file-pass\nheartbeat = 30\n")
    env = {"CONEY_DEFAULT_USER": "from-env", "CONEY_DEFAULT_PASS": "env-pass",
           "CONEY_HEARTBEAT": "7",
           # CONEY_* variables that are not keys are left alone
           "CONEY_NOT_A_KEY": "whatever"}
    b = start_broker(coney_bin, extra_args=["--config", str(conf)], env=env)
    try:
        with pika.BlockingConnection(b.params(user="from-env", password="env-pass")) as c:
            assert c._impl.params.heartbeat == 7
        with pytest.raises(pika.exceptions.ProbableAuthenticationError):
            pika.BlockingConnection(b.params(user="from-file", password="file-pass"))
        assert b.stop() == 0
    finally:
        b.cleanup()


def test_environment_sets_a_listener_and_flags_override_it(coney_bin, tmp_path):
    env_port, flag_port = free_port(), free_port()
    b = start_broker(coney_bin, port=env_port, use_port_flag=False,
                     env={"CONEY_LISTENERS_TCP_DEFAULT": "127.0.0.1:%d" % env_port})
    try:
        with pika.BlockingConnection(b.params()):
            pass
        assert b.stop() == 0
    finally:
        b.cleanup()
    b = start_broker(coney_bin, port=flag_port,
                     env={"CONEY_LISTENERS_TCP_DEFAULT": "127.0.0.1:%d" % env_port})
    try:
        # --port replaces the port; the address stays the one the environment gave
        assert "listening on 127.0.0.1:%d" % flag_port in b.log()
        assert b.stop() == 0
    finally:
        b.cleanup()


def test_bad_environment_value_is_refused(coney_bin, tmp_path):
    conf = tmp_path / "empty.conf"
    conf.write_text("")
    rc, err = start_refused(coney_bin, tmp_path, conf, env={"CONEY_STORAGE_SYNC": "sometimes"})
    assert rc == 2
    assert "CONEY_STORAGE_SYNC" in err and "sometimes" in err


# ------------------------------------------------------------ load_definitions

DEFINITIONS = {
    "users": [{"name": "loader", "password": "loaded", "tags": "management"}],
    "vhosts": [{"name": "boot"}],
    "permissions": [{"user": "loader", "vhost": "boot", "configure": ".*", "write": ".*",
                     "read": ".*"}],
    "exchanges": [{"name": "orders", "vhost": "boot", "type": "topic", "durable": True,
                   "auto_delete": False, "internal": False, "arguments": {}}],
    "queues": [{"name": "orders.created", "vhost": "boot", "durable": True,
                "auto_delete": False, "arguments": {"x-max-length": 100}}],
    "bindings": [{"source": "orders", "vhost": "boot", "destination": "orders.created",
                  "destination_type": "queue", "routing_key": "order.*", "arguments": {}}],
}


def test_load_definitions_at_boot(coney_bin, tmp_path):
    defs = tmp_path / "defs.json"
    defs.write_text(json.dumps(DEFINITIONS))
    conf = tmp_path / "defs.conf"
    conf.write_text("load_definitions = %s\n" % defs)
    b = start_broker(coney_bin, extra_args=["--config", str(conf)])
    try:
        log = b.log()
        # imported before any listener opened
        imported = log.index("load_definitions: imported")
        for opened in ("MQTT 3.1/3.1.1/5.0 listening", "management API listening",
                       "AMQP 0-9-1 listening"):
            assert imported < log.index(opened), opened
        with pika.BlockingConnection(b.params(user="loader", password="loaded",
                                              vhost="boot")) as c:
            ch = c.channel()
            ch.confirm_delivery()
            ch.basic_publish("orders", "order.created", b"via the loaded binding")
            assert get_one(ch, "orders.created", auto_ack=True)[2] == b"via the loaded binding"
        # a second start imports again and keeps what is there
        b.stop()
        b2 = start_broker(coney_bin, extra_args=["--config", str(conf), "--data-dir",
                                                 b.data_dir])
        try:
            with pika.BlockingConnection(b2.params(user="loader", password="loaded",
                                                   vhost="boot")) as c:
                c.channel().queue_declare("orders.created", passive=True)
            assert b2.stop() == 0
        finally:
            b2.cleanup()
    finally:
        b.cleanup()


def test_bad_definitions_file_stops_the_broker(coney_bin, tmp_path):
    conf = tmp_path / "defs.conf"
    conf.write_text("load_definitions = %s\n" % (tmp_path / "absent.json"))
    rc, err = start_refused(coney_bin, tmp_path, conf)
    assert rc != 0
    assert "absent.json" in err

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"queues": [{"name": "q", "vhost": "no-such-vhost"}]}))
    conf.write_text("load_definitions = %s\n" % bad)
    rc, err = start_refused(coney_bin, tmp_path, conf)
    assert rc != 0
    assert "load_definitions" in err and "no-such-vhost" in err


# ------------------------------------------------------------ logs

def test_log_file_context_reopen_and_rotate(coney_bin, tmp_path):
    logfile = tmp_path / "coney.log"
    conf = tmp_path / "log.conf"
    conf.write_text("log.file = %s\nlog.file.level = debug\nlog.console.level = warning\n"
                    % logfile)
    b = start_broker(coney_bin, extra_args=["--config", str(conf)])
    try:
        wait_for(lambda: logfile.exists() and "started" in logfile.read_text(),
                 what="the start line in log.file")
        assert "started" not in b.log()          # the console is at warning
        line = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \[(debug|info|warning|error)\] ")
        with pika.BlockingConnection(b.params()) as c:
            c.channel()
        subprocess.run(["mosquitto_pub", "-p", str(b.mqtt_port), "-i", "logged-client",
                        "-t", "a/b", "-m", "x"], check=True, timeout=TIMEOUT)

        def has(pattern):
            return re.search(pattern, logfile.read_text(), re.M)
        wait_for(lambda: has(r"closing AMQP connection .*\(vhost '/', user 'guest'\): "
                             r"client closed it \(200"), what="AMQP close line")
        assert has(r"accepting AMQP connection .*user 'guest', vhost '/'")
        wait_for(lambda: has(r"closing MQTT connection logged-client@.*\(vhost '/', "
                             r"user 'guest'\): client sent DISCONNECT"), what="MQTT close line")
        assert has(r"accepted MQTT 3.1.1 connection logged-client@.*vhost '/', user 'guest'")
        for text in logfile.read_text().splitlines():
            assert line.match(text), text

        # SIGHUP: reopen by name (what logrotate's rename + postrotate does)
        os.rename(logfile, tmp_path / "coney.log.old")
        b.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: logfile.exists() and "log file reopened" in logfile.read_text(),
                 what="a new log file after SIGHUP")
        assert "log file reopened" not in (tmp_path / "coney.log.old").read_text()

        # SIGUSR1: rename to .1 and start again
        b.proc.send_signal(signal.SIGUSR1)
        wait_for(lambda: (tmp_path / "coney.log.1").exists(), what="coney.log.1")
        wait_for(lambda: logfile.exists() and "log file rotated" in logfile.read_text(),
                 what="the new log file after SIGUSR1")
        assert "log file reopened" in (tmp_path / "coney.log.1").read_text()
        assert "log file reopened" not in logfile.read_text()
        assert b.stop() == 0
        assert "stopped" in logfile.read_text()
    finally:
        b.cleanup()


def test_unwritable_log_file_stops_the_broker(coney_bin, tmp_path):
    conf = tmp_path / "log.conf"
    conf.write_text("log.file = %s\n" % (tmp_path / "no" / "such" / "dir" / "coney.log"))
    rc, err = start_refused(coney_bin, tmp_path, conf)
    assert rc == 2
    assert "log.file" in err


# ------------------------------------------------------------ coney.scheduler_policy

SCHED_OTHER, SCHED_BATCH, SCHED_IDLE = 0, 3, 5


def thread_policies(pid):
    """{thread id: Linux scheduling policy} for every thread of pid
    (field 41 of /proc/<pid>/task/<tid>/stat)."""
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        out[int(tid)] = int(fields[41 - 3])
    return out


def broker_policies(coney_bin, env=None, wrapper=None):
    b = start_broker(wrapper or coney_bin, env=env)
    try:
        # the loop thread and the storage thread, started before the port opened
        policies = thread_policies(b.proc.pid)
        assert len(policies) >= 2, policies
        assert b.stop() == 0
        return set(policies.values())
    finally:
        b.cleanup()


def test_scheduler_policy_batch_by_default_inherit_on_request(coney_bin):
    assert os.sched_getscheduler(0) == SCHED_OTHER   # what the broker starts with here
    assert broker_policies(coney_bin) == {SCHED_BATCH}
    assert broker_policies(coney_bin, env={"CONEY_SCHEDULER_POLICY": "inherit"}) == {SCHED_OTHER}


def test_scheduler_policy_keeps_a_policy_chosen_by_whoever_started_it(coney_bin, tmp_path):
    wrapper = tmp_path / "coney-idle"
    wrapper.write_text('#!/bin/sh\nexec chrt --idle 0 "%s" "$@"\n' % coney_bin)
    wrapper.chmod(0o755)
    assert broker_policies(coney_bin, wrapper=str(wrapper)) == {SCHED_IDLE}


def test_scheduler_policy_bad_value_is_refused(coney_bin, tmp_path):
    conf = tmp_path / "sched.conf"
    conf.write_text("coney.scheduler_policy = fifo\n")
    rc, err = start_refused(coney_bin, tmp_path, conf)
    assert rc == 2
    assert "coney.scheduler_policy" in err

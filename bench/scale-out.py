#!/usr/bin/env python3
"""The scale-out benchmark (issue 18), run by bench/scale-out.sh: QoS 1 OwnTracks location
ingest through a 3-node rmqtt cluster into PostgreSQL with 1, then 2 mytracks nodes in external
mode, and the CPU each component spends per stored location.

Each run starts from nothing: a fresh 3-node rmqtt cluster (the same configuration as the tests,
crates/testkit/src/rmqtt.rs), a fresh PostgreSQL database and the mytracks nodes. Phones are
mqttload publishers (MQTT 3.1.1, QoS 1, `--payload owntracks`), one mqttload process and one
account per broker node; they log in through mytracks (rmqtt-auth-http; a phone's location
topic answer is kept a minute, `X-Cache`) as real phones do. mqttload's fan-in mode also
subscribes to what its publishers send, so the brokers deliver every location twice (to a
node and to that subscriber): the rmqttd and load-generator figures include that delivery. Each broker node asks one mytracks node (node i asks mytracks
node i mod N: with no load balancer in between, 2 nodes answer 2/3 and 1/3 of the calls).
The shared subscription's strategy is `hash_clientid` (each phone's points go to one node, as
docs/scale-out.md sets EMQX up); `--strategy round_robin` is the tests' (every phone's points
spread over all nodes). Batches a node could not store are counted from its log.

CPU: utime + stime from /proc/<pid>/stat of every process at the start and the end of the
measured window (after the warm-up): each rmqttd, each mytracks node, the PostgreSQL backends
of the run's database (a backend that exits in the window loses its share), PostgreSQL's
shared processes (WAL writer, checkpointer, background writer: cluster-wide, so quiet machines
only) and the load generators. Divided by the locations stored in the window (rows counted in
PostgreSQL), that is the CPU per stored message per component; 1 / that is what one core of
each component carries, which is what a projection to N machines needs.

Every process it starts is in its own session and is killed at the end (also on Ctrl-C and
SIGTERM); the temp directory and the database are removed. A SIGKILLed run leaves its
`mytracks_bench_<pid>_<n>` database behind: drop it by hand.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SECRET = "bench-auth-secret-0123456789abcdef"
SERVICE = ("mytracks-service", "service password 0123456789")
PHONE_PASSWORD = "bench phone's correct horse battery"
SERVER_KEY = "5a" * 32  # MYTRACKS_SECRET_KEY: the same on every node
BROKER_NODES = 3


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_ports(count):
    """Free ports on 127.0.0.1, all held until all are chosen so that none repeats."""
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def accepts(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.3).close()
        return True
    except OSError:
        return False


def cpu_seconds(pid):
    """utime + stime of a process (all its threads), or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # After the command name: state is field 3, utime 14, stime 15 (proc(5)).
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def http_get(url, token=None, timeout=3):
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, None
    except (OSError, ValueError):
        return 0, None


def wait_for(what, check, timeout, processes):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name, process in processes.items():
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode} while waiting for {what}")
        if check():
            return
        time.sleep(0.2)
    raise RuntimeError(f"timed out after {timeout} s waiting for {what}")


class Postgres:
    """psql against the server of `url`: the admin database and the run's own."""

    def __init__(self, url, suffix):
        self.admin_url = url
        parts = urllib.parse.urlsplit(url)
        self.database = f"mytracks_bench_{os.getpid()}_{suffix}"
        self.url = urllib.parse.urlunsplit(parts._replace(path="/" + self.database))

    def query(self, sql, own=False):
        out = subprocess.run(
            ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql,
             self.url if own else self.admin_url],
            check=True, capture_output=True, text=True, timeout=60,
        )
        return out.stdout.strip()

    def create(self):
        self.query(f"DROP DATABASE IF EXISTS {self.database} WITH (FORCE)")
        self.query(f"CREATE DATABASE {self.database}")

    def drop(self):
        self.query(f"DROP DATABASE IF EXISTS {self.database} WITH (FORCE)")

    def stored(self):
        return int(self.query("SELECT count(*) FROM locations", own=True))

    def pids(self):
        """Backends of the run's database, and the cluster's shared writer processes."""
        rows = self.query(
            "SELECT pid, CASE WHEN datname = '" + self.database + "' THEN 'backends' ELSE 'shared' END "
            "FROM pg_stat_activity WHERE datname = '" + self.database + "' OR backend_type IN "
            "('walwriter', 'checkpointer', 'background writer')"
        )
        out = {"backends": [], "shared": []}
        for row in rows.splitlines():
            pid, kind = row.split("|")
            out[kind].append(int(pid))
        return out


class Run:
    """One measurement: a fresh cluster, database and `nodes` mytracks nodes."""

    def __init__(self, args, nodes, tmp):
        self.args, self.nodes, self.tmp = args, nodes, tmp
        self.processes = {}  # name -> Popen, in start order
        self.db = Postgres(args.postgres, nodes)
        ports = free_ports(5 * BROKER_NODES + nodes)
        self.broker = [dict(zip(("mqtt", "service", "grpc", "raft", "api"), ports[5 * i:5 * i + 5]))
                       for i in range(BROKER_NODES)]
        self.http = ports[5 * BROKER_NODES:]
        self.api_token = f"bench-api-{os.getpid()}"

    def spawn(self, name, argv, cwd, env=None):
        out = open(os.path.join(cwd, f"{name}.log"), "ab")
        self.processes[name] = subprocess.Popen(
            argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self.processes[name]

    def stop(self):
        for name, process in reversed(list(self.processes.items())):
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM if name.startswith("mytracks") else signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for name, process in self.processes.items():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.processes.clear()

    # ---- rmqtt ----

    def write_broker(self, i, directory):
        node = self.broker[i]
        plugins = ["rmqtt-cluster-raft", "rmqtt-shared-subscription", "rmqtt-retainer",
                   "rmqtt-auth-http", "rmqtt-http-api"]
        listener = lambda name, port, inflight, queue: (
            f'[listener.tcp.{name}]\naddr = "127.0.0.1:{port}"\nallow_anonymous = false\n'
            f'max_inflight = {inflight}\nmax_mqueue_len = {queue}\n'
            f'session_expiry_interval = "2h"\nmessage_expiry_interval = "0"\n')
        files = {
            "rmqtt.toml": (
                f"[node]\nid = {i + 1}\n[node.busy]\ncheck_enable = false\n"
                f'[rpc]\nserver_addr = "127.0.0.1:{node["grpc"]}"\n'
                f'[log]\nto = "console"\nlevel = "warn"\ndir = "{directory}"\n'
                f'[plugins]\ndir = "{directory}/plugins/"\n'
                f"default_startups = {json.dumps(plugins)}\n"
                'disabled_default_startups = ["rmqtt-acl"]\n'
                + listener("external", node["mqtt"], 16, 1000)
                + listener("internal", node["service"], 256, 100000)),
            "plugins/rmqtt-cluster-raft.toml": (
                "node_grpc_addrs = " + json.dumps([f"{k + 1}@127.0.0.1:{n['grpc']}" for k, n in enumerate(self.broker)])
                + "\nraft_peer_addrs = " + json.dumps([f"{k + 1}@127.0.0.1:{n['raft']}" for k, n in enumerate(self.broker)])
                + "\nleader_id = 1\n[health]\nexit_on_node_unavailable = false\n"),
            "plugins/rmqtt-shared-subscription.toml": f'strategy = "{self.args.strategy}"\n',
            "plugins/rmqtt-retainer.toml": (
                'retained_message_ttl = "0m"\nmax_retained_messages = 0\n[storage]\ntype = "ram"\n'),
            "plugins/rmqtt-http-api.toml": (
                f'http_laddr = "127.0.0.1:{node["api"]}"\nhttp_bearer_token = "{self.api_token}"\n'),
            "plugins/rmqtt-auth-http.toml": self.auth_http(f"http://127.0.0.1:{self.http[i % self.nodes]}"),
        }
        os.makedirs(os.path.join(directory, "plugins"), exist_ok=True)
        for name, text in files.items():
            with open(os.path.join(directory, name), "w") as f:
                f.write(text)

    @staticmethod
    def auth_http(url):
        return (
            'http_timeout = "5s"\ndeny_if_error = true\ndisconnect_if_pub_rejected = true\n'
            f'http_headers.authorization = "Bearer {SECRET}"\n'
            f'[http_auth_req]\nurl = "{url}/api/mqtt/rmqtt/authn"\nmethod = "post"\n'
            'headers = { content-type = "application/json" }\n'
            'params = { clientid = "%c", username = "%u", password = "%P", peerhost = "%a", protocol = "%r" }\n'
            f'[http_acl_req]\nurl = "{url}/api/mqtt/rmqtt/authz"\nmethod = "post"\n'
            'headers = { content-type = "application/json" }\n'
            'params = { action = "%A", clientid = "%c", username = "%u", peerhost = "%a", topic = "%t" }\n')

    def start_brokers(self):
        started = time.monotonic()
        for i in range(BROKER_NODES):
            directory = os.path.join(self.tmp, f"run{self.nodes}", f"rmqtt{i + 1}")
            self.write_broker(i, directory)
            # A clean environment: rmqttd reads RMQTT_* variables and ./rmqtt.toml.
            env = {"PATH": os.environ.get("PATH", "")}
            self.spawn(f"rmqttd{i + 1}", [self.args.rmqttd, "-f", os.path.join(directory, "rmqtt.toml")],
                       directory, env)

        def healthy():
            if not all(accepts(n["mqtt"]) and accepts(n["service"]) for n in self.broker):
                return False
            status, health = http_get(f"http://127.0.0.1:{self.broker[0]['api']}/api/v1/health/check",
                                      self.api_token)
            running = [n for n in (health or {}).get("nodes", []) if n.get("running")]
            return status == 200 and len(running) >= BROKER_NODES

        wait_for("the rmqtt cluster", healthy, 60, self.processes)
        log(f"rmqtt cluster of {BROKER_NODES} ready in {time.monotonic() - started:.1f} s")

    # ---- mytracks ----

    def mytracks_config(self, k):
        urls = [f"mqtt://127.0.0.1:{n['service']}" for n in self.broker]
        apis = [f"http://127.0.0.1:{n['api']}" for n in self.broker]
        return (
            f'[database]\nurl = "{self.db.url}"\n'
            f'[integrations]\nhttp_auth_secret = "{SECRET}"\n'
            # The brokers' auth calls all come from one address.
            "[http]\nmax_connections_per_address = 1024\n"
            '[mqtt]\nmode = "external"\n'
            f"[mqtt.external]\nurl = {json.dumps(urls)}\n"
            f'username = "{SERVICE[0]}"\npassword = "{SERVICE[1]}"\nclient_id = "mytracks-bench-{k}"\n'
            f'[mqtt.external.admin]\nkind = "rmqtt"\nurl = {json.dumps(apis)}\nsecret = "{self.api_token}"\n')

    def mytracks_env(self):
        # No MYTRACKS_* of the caller's: only the configuration file and the shared server key.
        env = {k: v for k, v in os.environ.items() if not k.startswith("MYTRACKS_")}
        env["MYTRACKS_SECRET_KEY"] = SERVER_KEY
        return env

    def start_mytracks(self):
        for k in range(self.nodes):
            directory = os.path.join(self.tmp, f"run{self.nodes}", f"mytracks{k + 1}")
            os.makedirs(directory, exist_ok=True)
            config = os.path.join(directory, "config.toml")
            with open(config, "w") as f:
                f.write(self.mytracks_config(k + 1))
            if k == 0:
                # Also migrates the schema, before any node serves.
                for u in range(BROKER_NODES):
                    subprocess.run(
                        [self.args.mytracks, "user", "add", f"bench{u + 1}", "--password-stdin",
                         "--config", config, "--data-dir", os.path.join(directory, "data")],
                        input=PHONE_PASSWORD + "\n", env=self.mytracks_env(), check=True,
                        capture_output=True, text=True, timeout=120)
            started = time.monotonic()
            self.spawn(f"mytracks{k + 1}", [
                self.args.mytracks, "serve", "--config", config,
                "--data-dir", os.path.join(directory, "data"), "--bind", "127.0.0.1",
                "--http-port", str(self.http[k]), "--mqtt-port", "-1", "--mqtt-tls-port", "-1",
            ], directory, self.mytracks_env())
            url = f"http://127.0.0.1:{self.http[k]}/healthz"
            wait_for(f"mytracks node {k + 1}", lambda: http_get(url)[0] == 200, 90, self.processes)
            log(f"mytracks node {k + 1} serving in {time.monotonic() - started:.1f} s")
        expected = {f"mytracks-bench-{k + 1}" for k in range(self.nodes)}

        def members():
            status, clients = http_get(
                f"http://127.0.0.1:{self.broker[0]['api']}/api/v1/clients?username={SERVICE[0]}&_limit=100",
                self.api_token)
            connected = {c.get("clientid") for c in clients or [] if c.get("connected")}
            return status == 200 and expected <= connected

        wait_for("the ingest sessions", members, 90, self.processes)
        time.sleep(1)  # the SUBSCRIBE follows the CONNACK

    # ---- load and measurement ----

    def snapshot(self):
        pids = {name: [p.pid] for name, p in self.processes.items() if not name.startswith("load")}
        pids["load generator"] = [p.pid for n, p in self.processes.items() if n.startswith("load")]
        pg = self.db.pids()
        pids["postgres backends"] = pg["backends"]
        pids["postgres shared"] = pg["shared"]
        return {name: {pid: cpu_seconds(pid) for pid in group} for name, group in pids.items()}

    def measure(self):
        phones = max(1, self.args.phones // BROKER_NODES)
        for i, node in enumerate(self.broker):
            directory = os.path.join(self.tmp, f"run{self.nodes}")
            self.spawn(f"load{i + 1}", [
                self.args.mqttload, "--mode", "fanin", "--port", str(node["mqtt"]), "--pubs", str(phones),
                "--qos", "1", "--inflight", str(self.args.inflight), "--payload", "owntracks",
                "--prefix", f"owntracks/bench{i + 1}", "--user", f"bench{i + 1}", "--pass", PHONE_PASSWORD,
                "--secs", str(self.args.secs), "--warmup", str(self.args.warmup),
                *(["--rate", str(self.args.rate / BROKER_NODES)] if self.args.rate else []),
            ], directory)
        time.sleep(self.args.warmup)
        before, stored_before, t0 = self.snapshot(), self.db.stored(), time.monotonic()
        time.sleep(self.args.secs)
        after, stored_after, t1 = self.snapshot(), self.db.stored(), time.monotonic()
        results = []
        for i in range(BROKER_NODES):
            process = self.processes[f"load{i + 1}"]
            process.wait(timeout=self.args.secs + 60)
            with open(os.path.join(self.tmp, f"run{self.nodes}", f"load{i + 1}.log")) as f:
                lines = [line for line in f if line.startswith("RESULT")]
            if process.returncode != 0 or not lines:
                raise RuntimeError(f"load generator {i + 1} failed (exit {process.returncode})")
            results.append(dict(kv.split("=", 1) for kv in lines[-1].split()[1:]))
        load_ended = time.monotonic()
        stored_total = self.quiesce()
        refused = sum(self.log_lines(f"mytracks{k + 1}", "cannot store OwnTracks messages") for k in range(self.nodes))
        caught_up = self.caught_up_at - load_ended
        window = t1 - t0
        stored = stored_after - stored_before
        # Each node's own count (/healthz): the share of the ingest it took.
        by_node = [(http_get(f"http://127.0.0.1:{port}/healthz")[1] or {}).get("owntracks", {}).get("stored")
                   for port in self.http[:self.nodes]]
        cpu = {}
        for name, pids in after.items():
            seconds = sum((c or 0) - (before.get(name, {}).get(pid) or 0) for pid, c in pids.items() if c is not None)
            cpu[name] = {
                "cpu_seconds": round(seconds, 3),
                "cores": round(seconds / window, 3),
                "cpu_us_per_stored": round(1e6 * seconds / stored, 1) if stored else None,
                "stored_per_core_second": round(stored / seconds) if seconds > 0 else None,
            }
        return {
            "mytracks_nodes": self.nodes,
            "broker_nodes": BROKER_NODES,
            "strategy": self.args.strategy,
            "phones": phones * BROKER_NODES,
            "window_seconds": round(window, 2),
            "acked_per_s": round(sum(float(r["acked_per_s"]) for r in results)),
            "stored_per_s": round(stored / window),
            "stored_in_window": stored,
            "stored_total": stored_total,
            # Seconds after the load ended until the count stopped moving: how far the ingest lagged.
            "caught_up_after_s": round(max(0.0, caught_up), 1),
            "published_per_s": round(sum(float(r["published_per_s"]) for r in results)),
            "stored_by_node": by_node,
            # Batches a node could not store (logged; the broker delivers them again).
            "refused_batches": refused,
            "subscriber_received_per_s": round(sum(float(r["received_per_s"]) for r in results)),
            "cpu": cpu,
        }

    def log_lines(self, name, text):
        """How many lines of `name`'s log contain `text`."""
        path = os.path.join(self.tmp, f"run{self.nodes}", name, f"{name}.log")
        with open(path, errors="replace") as f:
            return sum(text in line for line in f)

    def quiesce(self):
        """Locations stored once the ingest has caught up (unchanged for 2 s, at most 60 s)."""
        last, steady, deadline = -1, 0, time.monotonic() + 60
        self.caught_up_at = time.monotonic()
        while time.monotonic() < deadline and steady < 4:
            count = self.db.stored()
            if count == last:
                steady += 1
            else:
                steady, self.caught_up_at = 0, time.monotonic()
            last = count
            time.sleep(0.5)
        return last


def print_logs(directory):
    """The end of every log of a failed run."""
    for root, _, files in sorted(os.walk(directory)):
        for name in sorted(f for f in files if f.endswith(".log")):
            with open(os.path.join(root, name), errors="replace") as f:
                print(f"----- {name} -----\n" + "".join(f.readlines()[-15:]), file=sys.stderr)


def table(result):
    print(f"\n## {result['mytracks_nodes']} mytracks node(s), {result['broker_nodes']} rmqtt nodes, "
          f"{result['phones']} phones, {result['window_seconds']} s measured")
    print(f"published {result['published_per_s']}/s, acknowledged to the phones {result['acked_per_s']}/s, "
          f"stored {result['stored_per_s']}/s ({result['stored_in_window']} in the window, "
          f"{result['stored_total']} in all, caught up {result['caught_up_after_s']} s after the load)")
    print(f"stored by each mytracks node (all of the run): {result['stored_by_node']}; "
          f"batches refused (see the nodes' logs): {result['refused_batches']}")
    print(f"{'component':<20} {'CPU s':>8} {'cores':>6} {'us CPU/stored':>14} {'stored/core-s':>14}")
    total = 0.0
    for name, c in result["cpu"].items():
        us = c["cpu_us_per_stored"]
        total += us or 0
        print(f"{name:<20} {c['cpu_seconds']:>8.2f} {c['cores']:>6.2f} "
              f"{us if us is not None else '-':>14} {c['stored_per_core_second'] or '-':>14}")
    print(f"{'all':<20} {'':>8} {'':>6} {round(total, 1):>14}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mytracks")
    parser.add_argument("--mqttload", required=True)
    parser.add_argument("--rmqttd", required=True)
    parser.add_argument("--postgres", required=True, help="an admin URL (CREATE DATABASE)")
    parser.add_argument("--nodes", default="1,2", help="mytracks node counts, one run each")
    parser.add_argument("--phones", type=int, default=30, help="publishers, split over the broker nodes")
    parser.add_argument("--inflight", type=int, default=32, help="unacknowledged publishes per phone")
    parser.add_argument("--secs", type=float, default=20)
    parser.add_argument("--warmup", type=float, default=5)
    parser.add_argument("--json", required=True, help="where the results go")
    parser.add_argument("--keep", action="store_true", help="keep the configurations and logs")
    # hash_clientid: each phone's points go to one node, as docs/scale-out.md sets EMQX up.
    # round_robin (the tests') spreads every phone over all nodes.
    parser.add_argument("--strategy", default="hash_clientid", help="rmqtt's shared-subscription strategy")
    # As fast as the broker acknowledges (0) swamps a 2-core machine's broker with phones'
    # publishes that queue behind the ingest; a fixed offered rate shows the cost per stored
    # location at a steady state, and the highest rate that is stored as fast as offered.
    parser.add_argument("--rate", type=float, default=0, help="locations/s offered in all (0: as fast as acknowledged)")
    args = parser.parse_args()
    # Processes run in their own directories.
    args.mytracks, args.mqttload, args.rmqttd = map(os.path.abspath, (args.mytracks, args.mqttload, args.rmqttd))
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: sys.exit(130))
    runs = []
    tmp = tempfile.mkdtemp(prefix="mytracks-scale-out-")
    try:
        for nodes in [int(n) for n in args.nodes.split(",")]:
            run = Run(args, nodes, tmp)
            try:
                run.db.create()
                run.start_brokers()
                run.start_mytracks()
                log(f"{nodes} mytracks node(s): {args.warmup} s warm-up, {args.secs} s measured")
                result = run.measure()
            except BaseException:
                print_logs(os.path.join(tmp, f"run{nodes}"))
                raise
            finally:
                try:
                    run.stop()
                finally:
                    try:
                        run.db.drop()
                    except Exception as error:  # the first error matters more
                        log(f"could not drop the run's database: {error}")
            table(result)
            runs.append(result)
    finally:
        if args.keep:
            log(f"kept the configurations and logs in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    with open(args.json, "w") as f:
        json.dump({"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "commit": commit,
                   "cores": os.cpu_count(), "secs": args.secs, "warmup": args.warmup,
                   "inflight": args.inflight, "strategy": args.strategy, "rate": args.rate, "runs": runs}, f, indent=2)
    if len(runs) >= 2 and runs[0]["stored_per_s"]:
        print(f"\n{runs[-1]['mytracks_nodes']} nodes / {runs[0]['mytracks_nodes']}: "
              f"{runs[-1]['stored_per_s'] / runs[0]['stored_per_s']:.2f}x the stored rate")
    print(f"results: {args.json}")


if __name__ == "__main__":
    main()

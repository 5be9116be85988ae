#!/usr/bin/env python3
"""Helper of tests/fleet/fleet.sh (standard library only).

  fleet.py sample PORT CSV
      Every 100 ms: INFO clients, INFO stats and DBSIZE on the fleet's Redis,
      one CSV row each (t_ms,up,conns_received,rejected,clients,dbsize). A
      tick where Redis does not answer is a row with up=0; the sampler
      reconnects on the next tick. Runs until SIGTERM.

  fleet.py pay PORT N RATE SECONDS
      Plays the cloud asking for payments: RATE payments per terminal per
      minute, spread evenly over the N terminals (T-F00001..), for SECONDS.
      Prints how many requests reached a subscribed agent.

  fleet.py write PORT RATE SECONDS
      Plays the cloud updating its catalog: RATE SETs of product:P-<i> per
      second for SECONDS. Every agent tracks the product: prefix (CLIENT
      TRACKING BCAST), so each write is an invalidation to every agent.

  fleet.py cluster-status PORTS N KILL_MS TIMEOUT_S
      Redis Cluster (PORTS: comma-separated node ports): polls every 100 ms
      until the status key of every terminal T-F00001..N holds a "ts" at or
      after KILL_MS (rewritten since a primary was killed); prints that time
      (epoch ms), or "timeout K of N" after TIMEOUT_S.

  In "pay" and "write", PORT may be "c:P1,P2,..." for a Redis Cluster: the
  command goes to the node owning its key's slot (CRC16, as the agent's
  routing); "pay" with "c:..." and the word "sharded" after SECONDS uses
  SPUBLISH on the owner of payment:<id>.

  fleet.py report --run DIR --agents N --kill MS --back-cmd MS --all MS [--png FILE]
      Reads the agents' logs (DIR/agents/*/agent.log, level debug), the
      sampler's CSV and the Redis log, and writes DIR/attempts.csv,
      DIR/attempts.png (gnuplot, if installed) and the restart part of the
      summary on stdout. Exit status 2 when the budget is missed.

Connection attempts are counted from the agents' side, since attempts made
while Redis is down never reach it. Each agent logs every failed attempt
("...; reconnecting in N ms (attempt K)", debug level after the fifth) and
the successful one ("online (...) after N ms", N measured from the start of
that attempt). The first "reconnecting" line after the kill is the agent
noticing the drop, not an attempt. Attempts are placed at their start
(previous "reconnecting in N ms" line + N). An attempt is one link attempt: the
command and the subscriber connection are opened together.
"""
import glob
import math
import os
import re
import signal
import socket
import sys
import time
import calendar

BIN_MS = 100


def now_ms():
    return int(time.time() * 1000)


# ---- sampler ---------------------------------------------------------------------------

def resp_read(f):
    line = f.readline()
    if not line:
        raise ConnectionError("closed")
    t, rest = line[:1], line[1:].rstrip(b"\r\n")
    if t == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)
        return data[:-2]
    if t == b":":
        return int(rest)
    if t in (b"+", b"-"):
        return rest
    raise ConnectionError("unexpected reply")


def sample(port, path):
    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    out = open(path, "w", buffering=1)
    out.write("t_ms,up,conns_received,rejected,clients,dbsize\n")
    sock = f = None
    nxt = time.monotonic()
    while not stop:
        t = now_ms()
        try:
            if sock is None:
                sock = socket.create_connection(("127.0.0.1", port), timeout=0.5)
                f = sock.makefile("rb")
            sock.sendall(b"INFO clients\r\nINFO stats\r\nDBSIZE\r\n")
            info = resp_read(f) + b"\n" + resp_read(f)
            dbsize = resp_read(f)
            kv = dict(l.split(":", 1) for l in info.decode().splitlines() if ":" in l)
            out.write("%d,1,%s,%s,%s,%d\n" % (t, kv["total_connections_received"],
                                              kv["rejected_connections"],
                                              kv["connected_clients"], dbsize))
        except (OSError, ConnectionError, ValueError, KeyError, TypeError):
            if sock is not None:
                sock.close()
            sock = f = None
            out.write("%d,0,,,,\n" % t)
        nxt += BIN_MS / 1000.0
        delay = nxt - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            nxt = time.monotonic()
    out.close()


# ---- a small cluster client -------------------------------------------------------------

def crc16(data):
    crc = 0
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


def key_slot(key):
    s = key.find(b"{")
    if s >= 0:
        e = key.find(b"}", s + 1)
        if e > s + 1:
            key = key[s + 1:e]
    return crc16(key) % 16384


def resp_cmd(args):
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


def resp_read_any(f):
    """One reply of any type; an error reply comes back as a RuntimeError."""
    line = f.readline()
    if not line:
        raise ConnectionError("closed")
    t, rest = line[:1], line[1:].rstrip(b"\r\n")
    if t == b"*":
        n = int(rest)
        return None if n < 0 else [resp_read_any(f) for _ in range(n)]
    if t == b"$":
        n = int(rest)
        return None if n < 0 else f.read(n + 2)[:-2]
    if t == b":":
        return int(rest)
    if t == b"+":
        return rest
    if t == b"-":
        return RuntimeError(rest.decode(errors="replace"))
    raise ConnectionError("unexpected reply")


class Cluster:
    """Routes a command to the node owning its key's slot (refreshing the
    map on -MOVED); one connection per node."""

    def __init__(self, ports):
        self.ports = ports
        self.conns = {}
        self.owner = [None] * 16384
        self.refresh()

    def conn(self, port):
        if port not in self.conns:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            self.conns[port] = (s, s.makefile("rb"))
        return self.conns[port]

    def refresh(self):
        for p in self.ports:
            try:
                s, f = self.conn(p)
                s.sendall(resp_cmd([b"CLUSTER", b"SLOTS"]))
                for ent in resp_read_any(f):
                    for slot in range(ent[0], ent[1] + 1):
                        self.owner[slot] = ent[2][1]
                return
            except (OSError, ConnectionError, TypeError):
                self.conns.pop(p, None)

    def owner_of(self, key):
        return self.owner[key_slot(key)]

    def cmd(self, args, key=None):
        for _ in range(5):
            port = self.owner_of(key if key is not None else args[1])
            try:
                s, f = self.conn(port)
                s.sendall(resp_cmd(args))
                r = resp_read_any(f)
            except (OSError, ConnectionError):
                self.conns.pop(port, None)
                self.refresh()
                continue
            if isinstance(r, RuntimeError) and str(r).startswith(("MOVED", "CLUSTERDOWN")):
                time.sleep(0.05)
                self.refresh()
                continue
            return r
        return None

    def pipeline_get(self, keys):
        """GET of many keys, one pipeline per node: {key: value}."""
        by_port = {}
        for k in keys:
            by_port.setdefault(self.owner_of(k), []).append(k)
        out = {}
        for port, ks in by_port.items():
            try:
                s, f = self.conn(port)
                s.sendall(b"".join(resp_cmd([b"GET", k]) for k in ks))
                for k in ks:
                    out[k] = resp_read_any(f)
            except (OSError, ConnectionError):
                self.conns.pop(port, None)
        return out


def target(spec):
    """A port, or a Cluster for "c:P1,P2,..."."""
    if str(spec).startswith("c:"):
        return Cluster([int(p) for p in spec[2:].split(",")])
    return int(spec)


def cluster_status(ports, n, kill_ms, timeout_s):
    c = Cluster([int(p) for p in ports.split(",")])
    keys = [b"terminal:T-F%05d:status" % (i + 1) for i in range(n)]
    end = time.monotonic() + timeout_s
    fresh = 0
    while time.monotonic() < end:
        c.refresh()
        vals = c.pipeline_get(keys)
        fresh = 0
        for k in keys:
            v = vals.get(k)
            m = re.search(rb'"ts":(\d+)', v) if isinstance(v, bytes) else None
            fresh += 1 if m and int(m.group(1)) >= kill_ms else 0
        if fresh == n:
            print(now_ms())
            return 0
        time.sleep(0.1)
    print("timeout %d of %d" % (fresh, n))
    return 1


def pay(port, n, rate, seconds, sharded=False):
    c = target(port)
    if isinstance(c, Cluster):
        return pay_cluster(c, n, rate, seconds, sharded)
    sock = socket.create_connection(("127.0.0.1", port))
    f = sock.makefile("rb")
    per_s = n * rate / 60.0
    total = int(per_s * seconds)
    heard = 0
    start = time.monotonic()
    for i in range(total):
        due = start + i / per_s
        d = due - time.monotonic()
        if d > 0:
            time.sleep(d)
        term = "T-F%05d" % (i % n + 1)
        body = ('{"type":"PAYMENT_REQUESTED","transactionId":"fleet-%d","amount":%d.50,'
                '"currency":"EUR"}' % (i, i % 90 + 1))
        args = [b"PUBLISH", ("payment:" + term).encode(), body.encode()]
        cmd = b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)
        sock.sendall(cmd)
        heard += 1 if resp_read(f) else 0
    print("%d payment requests sent, %d heard by an agent" % (total, heard))


def pay_cluster(c, n, rate, seconds, sharded):
    per_s = n * rate / 60.0
    total = int(per_s * seconds)
    heard = 0
    start = time.monotonic()
    for i in range(total):
        d = start + i / per_s - time.monotonic()
        if d > 0:
            time.sleep(d)
        ch = b"payment:T-F%05d" % (i % n + 1)
        body = (b'{"type":"PAYMENT_REQUESTED","transactionId":"fleet-%d","amount":%d.50,'
                b'"currency":"EUR"}' % (i, i % 90 + 1))
        r = c.cmd([b"SPUBLISH" if sharded else b"PUBLISH", ch, body], key=ch)
        heard += 1 if isinstance(r, int) and r > 0 else 0
    print("%d payment requests sent, %d heard by an agent" % (total, heard))


def write(port, rate, seconds):
    c = target(port)
    if isinstance(c, Cluster):
        total = int(rate * seconds)
        start = time.monotonic()
        for i in range(total):
            d = start + i / rate - time.monotonic()
            if d > 0:
                time.sleep(d)
            key = b"product:P-%d" % (i % 1000)
            val = (b'{"id":"P-%d","name":"Product %d","price":"%d.99"}'
                   % (i % 1000, i % 1000, i % 50))
            c.cmd([b"SET", key, val])
        print("%d product writes" % total)
        return
    sock = socket.create_connection(("127.0.0.1", port))
    f = sock.makefile("rb")
    total = int(rate * seconds)
    start = time.monotonic()
    for i in range(total):
        d = start + i / rate - time.monotonic()
        if d > 0:
            time.sleep(d)
        key = b"product:P-%d" % (i % 1000)
        val = b'{"id":"P-%d","name":"Product %d","price":"%d.99"}' % (i % 1000, i % 1000, i % 50)
        sock.sendall(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(key), key, len(val), val))
        resp_read(f)
    print("%d product writes" % total)


# ---- report ----------------------------------------------------------------------------

LOG_RE = re.compile(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)\.(\d{3})Z (\w+)\s+link: (.*)$")
ONLINE_RE = re.compile(r"^online \(.*\) after (\d+) ms")
RETRY_RE = re.compile(r"reconnecting in (\d+) ms \(attempt \d+\)$")
REDIS_READY_RE = re.compile(r"^\d+:M (\d+ \w+ \d+ [\d:]+\.\d+) \* Ready to accept connections")


def log_ms(m):
    y, mo, d, h, mi, s, ms = (int(x) for x in m.groups()[:7])
    return calendar.timegm((y, mo, d, h, mi, s)) * 1000 + ms


def agent_attempts(path, t_kill):
    """(failed attempt start times, successful attempt start time, online time, went down)
    after t_kill.

    An attempt starts when the retry timer fires: the previous "reconnecting
    in N ms" line's time plus N. (Its failure is logged later, up to a
    second later when a SYN is retransmitted, so the failure line's own time
    is not used.) "went down": the link said offline or retried after t_kill; on a
    cluster without tracking, an agent with no connection to the killed primary
    stays online."""
    failed, ok_at, online_at, prev, down = [], None, None, None, False
    with open(path, errors="replace") as fh:
        for line in fh:
            m = LOG_RE.match(line)
            if not m:
                continue
            t = log_ms(m)
            if t < t_kill:
                continue
            msg = m.group(9)
            down = down or msg.startswith("offline")
            r = RETRY_RE.search(msg)
            if r:
                down = True
                if prev is not None:
                    failed.append(prev)
                prev = t + int(r.group(1))
                continue
            o = ONLINE_RE.match(msg)
            if o and prev is not None:
                ok_at, online_at = t - int(o.group(1)), t
                break
    return failed, ok_at, online_at, down


def redis_ready_ms(path):
    """Time of the last "Ready to accept connections" in the Redis log (local time)."""
    last = None
    with open(path, errors="replace") as fh:
        for line in fh:
            m = REDIS_READY_RE.match(line)
            if m:
                tm = time.strptime(m.group(1).rsplit(".", 1)[0], "%d %b %Y %H:%M:%S")
                last = int(time.mktime(tm)) * 1000 + int(m.group(1).rsplit(".", 1)[1])
    return last


def sliding_peak(times, width=BIN_MS):
    """Most events in any window [t, t + width) and its start (times sorted)."""
    best, at, j = 0, 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - width:
            j += 1
        if i - j + 1 > best:
            best, at = i - j + 1, times[j]
    return best, at


def pct(a, b):
    return 100.0 * a / b if b else 0.0


def report(args):
    run, n = args["run"], int(args["agents"])
    t_kill, t_all_cmd = int(args["kill"]), int(args["all"])
    logs = glob.glob(os.path.join(run, "redis-*.log"))
    t_back = redis_ready_ms(logs[0]) if logs and "cluster" not in args else None
    if t_back is None or t_back < t_kill:
        t_back = int(args["back-cmd"])  # fallback: the script's PING; a cluster's promotion
    if not t_kill <= t_back <= t_kill + 600000:
        sys.stderr.write("fleet.py: redis back at %d is not within 10 min after the kill at %d\n"
                         % (t_back, t_kill))
        return 1
    logs = sorted(glob.glob(os.path.join(run, "agents", "*", "agent.log")))
    failed, ok, online, missing, stayed = [], [], [], 0, 0
    for p in logs:
        f, a, o, down = agent_attempts(p, t_kill)
        failed += f
        if a is None and not down:
            stayed += 1  # never lost its link: nothing of it was on the killed node
        elif a is None:
            missing += 1
        else:
            ok.append(a)
            online.append(o)
    attempts = sorted(failed + ok)
    end = max(online) if online else t_all_cmd

    def b(t):
        return int(math.floor((t - t_back) / BIN_MS))

    lo, hi = b(t_kill), b(end)
    bins = {i: [0, 0, 0, 0] for i in range(lo, hi + 1)}  # failed, ok, online, accepted
    for t in failed:
        bins.setdefault(b(t), [0, 0, 0, 0])[0] += 1
    for t in ok:
        bins.setdefault(b(t), [0, 0, 0, 0])[1] += 1
    for t in online:
        bins.setdefault(b(t), [0, 0, 0, 0])[2] += 1
    # Connections Redis accepted, from the sampler (counter restarts at 0 with the new process).
    rows = []
    samples = os.path.join(run, "samples.csv")
    with open(samples if os.path.exists(samples) else os.devnull) as fh:
        next(fh, None)
        for line in fh:
            r = line.strip().split(",")
            rows.append((int(r[0]), r[1] == "1") + tuple(int(x) if x else 0 for x in r[2:]))
    prev, max_clients, rejected = None, 0, 0
    for t, up, recv, rej, clients, _db in rows:
        if up:
            max_clients = max(max_clients, clients)
            rejected = max(rejected, rej)
            if t >= t_kill and b(t) in bins:
                base = prev if prev is not None and prev <= recv else 0
                bins[b(t)][3] += recv - base
            prev = recv
    with open(os.path.join(run, "attempts.csv"), "w") as out:
        out.write("t_ms_from_redis_back,attempts,failed,succeeded,came_online,online_total,"
                  "redis_accepted_conns\n")
        cum = 0
        for i in sorted(bins):
            f, s, o, acc = bins[i]
            cum += o
            out.write("%d,%d,%d,%d,%d,%d,%d\n" % (i * BIN_MS, f + s, f, s, o, cum, acc))
    total = len(attempts)
    peak, peak_at = sliding_peak(attempts)
    after = [t for t in attempts if t >= t_back]
    total_after = len(after)
    peak_after, peak_after_at = sliding_peak(after)
    back_all = (end - t_back) if online else -1
    maxclients = int(args.get("maxclients", 0))

    lines = []
    w = lines.append
    cluster = "cluster" in args
    back = "the replica was promoted" if cluster else "redis was back"
    if cluster:
        w("failover: primary killed, replica promoted and the cluster ok %.1f s later (t=0)"
          % ((t_back - t_kill) / 1000.0))
    else:
        w("restart: redis killed, down %.1f s, back at t=0 (its log's \"Ready to accept "
          "connections\")" % ((t_back - t_kill) / 1000.0))
    w("  attempts (one link attempt = command + subscriber connection), from the kill until all online:")
    w("    total %d (%.1f per agent), failed %d, succeeded %d" % (total, total / max(n, 1),
                                                                 len(failed), len(ok)))
    w("    busiest 100 ms (sliding window): %d attempts from t=%+d ms = %.1f%% of the fleet's "
      "attempts (budget 25%%)" % (peak, peak_at - t_back, pct(peak, total)))
    w("    after %s: %d attempts; busiest 100 ms %d from t=%+d ms = %.1f%% of them"
      % (back, total_after, peak_after, peak_after_at - t_back, pct(peak_after, total_after)))
    if not cluster:
        acc_total = sum(bins[i][3] for i in bins)
        acc_peak_bin = max(bins, key=lambda i: bins[i][3]) if bins else 0
        w("    connections redis accepted (INFO stats every 100 ms): %d, peak %d in the window "
          "at t=%+d ms" % (acc_total, bins[acc_peak_bin][3] if bins else 0,
                           acc_peak_bin * BIN_MS))
    w("  all %d agents online again %d ms after %s (budget 5000 ms)%s%s"
      % (n - missing - stayed, back_all, back,
         "; %d stayed online (no connection to the killed node)" % stayed if stayed else "",
         "; %d agents never came back" % missing if missing else ""))
    w("    (status keys: all %d %s %d ms after %s, script's poll)"
      % (n, "rewritten" if cluster else "present", t_all_cmd - t_back, back))
    if not cluster:
        w("  redis: max connected_clients %d (maxclients %d, fleet needs %d), "
          "rejected_connections %d" % (max_clients, maxclients, 2 * n, rejected))
    ok_budget = (missing == 0 and 0 <= back_all <= 5000 and pct(peak, total) <= 25.0
                 and rejected == 0 and (maxclients == 0 or max_clients < maxclients))
    w("  budget: %s" % ("met" if ok_budget else "MISSED"))
    print("\n".join(lines))

    png = args.get("png")
    if png and not plot(run, png, n, t_kill - t_back):
        print("  (no plot: gnuplot not found)")
    return 0 if ok_budget else 2


def plot(run, png, n, kill_rel):
    from shutil import which
    import subprocess
    if not which("gnuplot"):
        return False
    script = """
set terminal pngcairo size 1000,520 font ",10" noenhanced
set output '%(png)s'
set datafile separator ','
set title 'posagent fleet: %(n)d agents, Redis killed at %(kill).1f s, back at 0 s (default backoff 100 ms .. 3 s, full jitter)'
set xlabel 'seconds from Redis back'
set ylabel 'link attempts per 100 ms'
set y2label 'agents online'
set y2range [0:%(n)d*1.05]
set yrange [0:*]
set ytics nomirror
set y2tics
set grid ytics
set key below
set style fill solid 0.6 noborder
set arrow from 0, graph 0 to 0, graph 1 nohead lc rgb 'black' dt 2
set arrow from %(kill).3f, graph 0 to %(kill).3f, graph 1 nohead lc rgb 'red' dt 2
plot '%(csv)s' using ($1/1000.0+0.05):2 with boxes lc rgb '#d62728' title 'failed attempts (connection refused)', \\
     '' using ($1/1000.0+0.05):4 with boxes lc rgb '#2ca02c' title 'successful attempts (drawn over the failed ones: bars are stacked)', \\
     '' using ($1/1000.0+0.1):6 axes x1y2 with steps lw 2 lc rgb '#1f77b4' title 'agents online (status rewritten)'
""" % {"png": png, "n": n, "kill": kill_rel / 1000.0, "csv": os.path.join(run, "attempts.csv")}
    subprocess.run(["gnuplot"], input=script.encode(), check=True)
    return True


def main(argv):
    if len(argv) == 4 and argv[1] == "sample":
        sample(int(argv[2]), argv[3])
        return 0
    if len(argv) in (6, 7) and argv[1] == "pay":
        pay(argv[2] if argv[2].startswith("c:") else int(argv[2]), int(argv[3]),
            float(argv[4]), float(argv[5]), len(argv) == 7 and argv[6] == "sharded")
        return 0
    if len(argv) == 5 and argv[1] == "write":
        write(argv[2] if argv[2].startswith("c:") else int(argv[2]), float(argv[3]),
              float(argv[4]))
        return 0
    if len(argv) == 6 and argv[1] == "cluster-status":
        return cluster_status(argv[2], int(argv[3]), int(argv[4]), float(argv[5]))
    if len(argv) >= 2 and argv[1] == "report":
        args, it = {}, iter(argv[2:])
        for k in it:
            args[k.lstrip("-")] = next(it)
        return report(args)
    sys.stderr.write(__doc__)
    return 64


if __name__ == "__main__":
    sys.exit(main(sys.argv))

#!/usr/bin/env python3
"""Clients' side of the recorded benchmark corpus (see record-bench.sh).

    bench_client.py --root DIR --stop FILE [--deadline SECONDS] [--seed N]

Drives a mix of real clients against nginx (port 8080, the static files of
DIR/manifest.tsv) and bench_app.py (port 8082) until FILE exists or the
deadline passes, all at once:

  - python-requests sessions (keep-alive, gzip and br accepted): static files,
    API pages, chunked NDJSON streams, JSON POSTs;
  - curl, several URLs per invocation on one connection, with --compressed;
  - ab with keep-alive and gzip, bursts on one file;
  - one server-sent event stream, open from the start to the end;
  - long polls, one after the other, so that one is always waiting;
  - sessions that go idle with their connection open.

record-bench.sh stops the capture first and these clients after it, so the
capture ends with exchanges still open: a response cut in its body, the event
stream, a long poll without its answer, idle keep-alive connections.
"""

import argparse
import json
import os
import random
import subprocess
import sys
import threading
import time

import requests

NGX = "http://127.0.0.1:8080"
APP = "http://127.0.0.1:8082"


class Mix:
    def __init__(self, root, seed):
        self.files = []
        with open(os.path.join(root, "manifest.tsv")) as f:
            for line in f:
                rel, size, kind = line.rstrip("\n").split("\t")
                self.files.append((rel, int(size), kind))
        self.seed = seed
        # Small files more often than big ones (a file's weight falls with the 0.4th power of
        # its size), binaries a little less often than text: about half of the static bytes
        # on the wire are binaries, the rest compressed text.
        self.weights = [(1.0 if k != "bin" else 0.7) / (s ** 0.4) for _, s, k in self.files]

    def pick(self, rng):
        return rng.choices(self.files, self.weights)[0][0]


def until(stop, deadline):
    return not os.path.exists(stop) and time.monotonic() < deadline


def requests_worker(mix, n, stop, deadline):
    rng = random.Random("requests:%d:%d" % (mix.seed, n))
    s = requests.Session()
    s.headers["Accept-Encoding"] = "gzip, deflate, br" if n % 2 == 0 else "gzip"
    s.headers["User-Agent"] = "bench-client/requests-%d" % n
    for it in range(10**6):
        if not until(stop, deadline):
            break
        try:
            r = rng.random()
            if r < 0.55:
                s.get("%s/%s" % (NGX, mix.pick(rng)), timeout=30).content
            elif r < 0.7:
                s.get("%s/api/items?page=%d" % (APP, rng.randrange(1000)), timeout=30).content
            elif r < 0.85:
                s.get("%s/api/stream?n=%d" % (APP, rng.randrange(50, 3000)), timeout=60).content
            else:
                body = [{"event": "click", "seq": it * 10 + i, "value": rng.random(),
                         "label": "item \"%d\"" % rng.randrange(100)} for i in range(rng.randrange(1, 400))]
                s.post("%s/api/ingest" % APP, data=json.dumps(body),
                       headers={"Content-Type": "application/json"}, timeout=30).content
        except requests.RequestException as e:
            print("requests-%d: %s" % (n, e), file=sys.stderr)
            time.sleep(0.2)


def curl_worker(mix, n, stop, deadline):
    rng = random.Random("curl:%d:%d" % (mix.seed, n))
    for _ in range(10**5):
        if not until(stop, deadline):
            break
        urls = ["%s/%s" % (NGX, mix.pick(rng)) for _ in range(rng.randrange(2, 9))]
        if rng.random() < 0.3:
            urls.append("%s/api/stream?n=%d" % (APP, rng.randrange(50, 1000)))
        args = ["curl", "-s", "--compressed", "--max-time", "30"]
        for u in urls:
            args += ["-o", "/dev/null", u]
        subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)


def ab_worker(mix, stop, deadline):
    rng = random.Random("ab:%d" % mix.seed)
    for _ in range(10**5):
        if not until(stop, deadline):
            break
        url = "%s/%s" % (NGX, mix.pick(rng))
        subprocess.run(["ab", "-q", "-k", "-n", str(rng.randrange(10, 60)), "-c", "3",
                        "-H", "Accept-Encoding: gzip", url],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
        time.sleep(0.3)


def sse_worker(stop, deadline):
    with requests.get("%s/api/events?n=100000&every=0.25" % APP, stream=True, timeout=3600) as r:
        for _ in r.iter_lines(chunk_size=1):
            if not until(stop, deadline):
                break


def poll_worker(stop, deadline):
    s = requests.Session()
    for _ in range(10**5):
        if not until(stop, deadline):
            break
        try:
            s.get("%s/api/poll?wait=3" % APP, timeout=3600).content
        except requests.RequestException:
            break


def idle_worker(mix, stop, deadline):
    """Sessions that fetch a little and then keep their connection open, idle."""
    rng = random.Random("idle:%d" % mix.seed)
    sessions = []
    for i in range(4):
        if not until(stop, deadline):
            break
        s = requests.Session()
        s.get("%s/%s" % (NGX, mix.pick(rng)), timeout=30).content
        sessions.append(s)
        time.sleep(1.0)
    while until(stop, deadline):
        time.sleep(0.1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--stop", required=True)
    ap.add_argument("--deadline", type=float, default=600)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    mix = Mix(a.root, a.seed)
    deadline = time.monotonic() + a.deadline
    threads = [threading.Thread(target=sse_worker, args=(a.stop, deadline)),
               threading.Thread(target=poll_worker, args=(a.stop, deadline)),
               threading.Thread(target=idle_worker, args=(mix, a.stop, deadline)),
               threading.Thread(target=ab_worker, args=(mix, a.stop, deadline))]
    threads += [threading.Thread(target=requests_worker, args=(mix, n, a.stop, deadline)) for n in range(3)]
    threads += [threading.Thread(target=curl_worker, args=(mix, n, a.stop, deadline)) for n in range(2)]
    for t in threads:
        t.daemon = True
        t.start()
    while until(a.stop, deadline):
        time.sleep(0.1)
    # record-bench.sh ends the capture before it creates the stop file; whatever is
    # still in flight now stays unfinished in the capture.


if __name__ == "__main__":
    main()

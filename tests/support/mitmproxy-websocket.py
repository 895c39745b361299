"""Reads the WebSocket entries of a HAR with mitmproxy's own code.

    python mitmproxy-websocket.py FILE.har

mitmproxy's HAR loader (mitmproxy.io.har.request_to_flow, what `mitmdump -r` uses) makes a
flow of each entry but does not read `_webSocketMessages`; mitmproxy's HAR writer
(mitmproxy.addons.savehar) writes them from a flow's `websocket.messages`. So for each
entry with `_resourceType` "websocket": the loader makes the flow, the entry's messages
become mitmproxy WebSocketMessages (text from `data` for opcode 1, else base64-decoded), and
the writer writes the flow again; its `_resourceType` and `_webSocketMessages` must be the
entry's, field for field. Then one line per entry (`entry URL`) and one per message
(`message send|receive OPCODE LENGTH SHA256`) from the flow's messages, for the caller to
compare with the recording client's record. Exits 1 when a written entry differs.
"""

import base64
import hashlib
import json
import sys

from mitmproxy.addons.savehar import SaveHar
from mitmproxy.io import har
from mitmproxy.websocket import WebSocketData, WebSocketMessage


def main():
    with open(sys.argv[1]) as f:
        doc = json.load(f)
    bad = 0
    for e in doc["log"]["entries"]:
        if e.get("_resourceType") != "websocket":
            continue
        flow = har.request_to_flow(e)
        msgs = []
        for m in e["_webSocketMessages"]:
            if m["opcode"] == 1 and m.get("_encoding") != "base64":
                content = m["data"].encode("utf-8")
            else:
                content = base64.b64decode(m["data"])
            msgs.append(WebSocketMessage(m["opcode"], m["type"] == "send", content, m["time"]))
        flow.websocket = WebSocketData(messages=msgs)
        again = SaveHar().flow_entry(flow, set())
        ours = [{k: m[k] for k in ("type", "time", "opcode", "data")} for m in e["_webSocketMessages"]]
        if again.get("_resourceType") != "websocket" or again.get("_webSocketMessages") != ours:
            bad += 1
            print("differs:", flow.request.url, file=sys.stderr)
        print("entry", flow.request.url)
        for m in flow.websocket.messages:
            print("message", "send" if m.from_client else "receive", int(m.type), len(m.content),
                  hashlib.sha256(m.content).hexdigest())
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

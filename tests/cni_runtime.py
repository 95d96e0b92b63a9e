#!/usr/bin/env python3
"""A minimal CNI runtime, doing what libcni does for a network config list,
so the tests drive the real plugins exactly as containerd, CRI-O or podman
would:

  cni_runtime.py ADD|DEL|CHECK CONFLIST CONTAINER-ID NETNS IFNAME CACHE-DIR [RUNTIME-CONFIG-JSON]

- ADD runs the plugins in order, each given the previous one's result as
  prevResult, and caches the final result in CACHE-DIR/CONTAINER-ID.json;
- DEL runs them in reverse order, each given the cached result (none after a
  failed ADD), then forgets it; CHECK runs them in order with it;
- each plugin gets "name" and "cniVersion" from the list, and runtimeConfig
  holding only the keys its "capabilities" ask for (portMappings);
- the CNI_* variables: CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME,
  CNI_PATH (from the environment's CNI_PATH).

Prints the final result (ADD) or the failing plugin's output, and exits 0 or
1. With TIMING_FILE set, appends "TYPE COMMAND MILLISECONDS" per plugin run."""
import json
import os
import subprocess
import sys
import time

command, conflist_path, container_id, netns, ifname, cache_dir = sys.argv[1:7]
runtime_config = json.loads(sys.argv[7]) if len(sys.argv) > 7 else {}
with open(conflist_path) as f:
    conflist = json.load(f)
cache = os.path.join(cache_dir, f"{conflist['name']}-{container_id}.json")
cni_path = os.environ["CNI_PATH"]


def run_plugin(plugin, prev_result):
    conf = dict(plugin)
    conf["name"] = conflist["name"]
    conf["cniVersion"] = conflist["cniVersion"]
    wanted = {k: runtime_config[k] for k, on in plugin.get("capabilities", {}).items() if on and k in runtime_config}
    if wanted:
        conf["runtimeConfig"] = wanted
    if prev_result is not None:
        conf["prevResult"] = prev_result
    env = dict(os.environ, CNI_COMMAND=command, CNI_CONTAINERID=container_id, CNI_NETNS=netns,
               CNI_IFNAME=ifname, CNI_PATH=cni_path)
    binary = os.path.join(cni_path.split(":")[0], plugin["type"])
    start = time.monotonic()
    done = subprocess.run([binary], input=json.dumps(conf).encode(), env=env, capture_output=True, timeout=60)
    elapsed_ms = (time.monotonic() - start) * 1000
    if os.environ.get("TIMING_FILE"):
        with open(os.environ["TIMING_FILE"], "a") as f:
            f.write(f"{plugin['type']} {command} {elapsed_ms:.3f}\n")
    if done.returncode != 0:
        sys.stdout.write(done.stdout.decode(errors="replace") or done.stderr.decode(errors="replace"))
        sys.exit(1)
    return done.stdout


if command == "ADD":
    result = None
    for plugin in conflist["plugins"]:
        result = json.loads(run_plugin(plugin, result))
    with open(cache, "w") as f:
        json.dump(result, f)
    print(json.dumps(result))
else:
    cached = None
    if os.path.exists(cache):
        with open(cache) as f:
            cached = json.load(f)
    plugins = conflist["plugins"]
    for plugin in (reversed(plugins) if command == "DEL" else plugins):
        run_plugin(plugin, cached)
    if command == "DEL" and os.path.exists(cache):
        os.unlink(cache)

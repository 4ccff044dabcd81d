"""`ray start` for a worker node that stays on 127.0.0.1 (test clusters only).

Ray's CLI refuses to start a worker node when RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, the switch
that keeps a node's ports on loopback; without it, the CLI rewrites 127.0.0.1 (in --address
and --node-ip-address) to the machine's interface address. This runs the same `ray start`
command with that one rewrite turned off, so the worker joins the head on 127.0.0.1.

    python tests/ray_worker_node.py --address=127.0.0.1:PORT --node-ip-address=127.0.0.1 ...
"""

from __future__ import annotations

import sys

import ray._private.ray_constants as ray_constants
import ray._private.services as services
from ray.scripts.scripts import main

if __name__ == "__main__":
    ray_constants.ENABLE_RAY_CLUSTER = True  # past the CLI's refusal...
    services.resolve_ip_for_localhost = lambda host: host  # ...and keep 127.0.0.1 as given
    sys.argv = ["ray", "start", *sys.argv[1:]]
    sys.exit(main())

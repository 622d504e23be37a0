import random
import socket

# Below the kernel's ephemeral range the port of an outgoing connection
# never lands: a port picked there stays free until our server binds it,
# unless another test process picks the same one (1 in ~10,000 per pick).
_FALLBACK_RANGE = (15000, 32000)
# Not the module-level generator: a test that seeds it must not make two
# processes pick the same ports.
_pick = random.SystemRandom()


def _ephemeral_low() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago.

    The port is chosen at random below the ephemeral range, so that neither
    the kernel's choice for an outgoing connection nor another process
    asking for "any port" takes it before the real server binds it.
    """
    low, high = _FALLBACK_RANGE
    high = min(high, _ephemeral_low())
    for _ in range(200):
        port = _pick.randrange(low, high)
        if _bindable(port):
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

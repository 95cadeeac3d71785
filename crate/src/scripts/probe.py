"""AI Studio SSH's probe: prints one JSON line about the container (arguments: the state
directory, the project's key directory and the route's service, `tunnel` or `bridge`). The
line's contract, and its parser, are `ProbeReport` in crate/src/render/probe.rs. Reads only;
changes nothing."""
import json, os, socket, subprocess, sys

STATE, KEYS, SERVICE = sys.argv[1:4]

def run(*command):
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=10)
        return done.stdout.strip() if done.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired):
        return None

def read(path):
    try:
        with open(path) as file:
            return file.read().strip()
    except OSError:
        return None

def alive(pid_file):
    pid = read(pid_file)
    try:
        os.kill(int(pid), 0)
        return True
    except (TypeError, ValueError, OSError):
        return False

def fingerprint(public_key_file):
    listed = run("ssh-keygen", "-l", "-f", public_key_file)
    return listed.split()[1] if listed else None

def init_started():
    # Seconds since the epoch when PID 1 started: boot time plus its start in clock ticks.
    try:
        boot = next(int(line.split()[1]) for line in open("/proc/stat") if line.startswith("btime "))
        ticks = int(read("/proc/1/stat").rsplit(")", 1)[1].split()[19])
        return boot + ticks // os.sysconf("SC_CLK_TCK")
    except (OSError, StopIteration, ValueError, AttributeError, IndexError):
        return None

def accelerator():
    nvidia = run("nvidia-smi", "-L")
    if nvidia:
        return {"kind": "nvidia", "devices": nvidia.splitlines()}
    iluvatar = run("ixsmi", "-L")  # Iluvatar BI-V150S cards; output format is a guess
    if iluvatar:
        return {"kind": "iluvatar", "devices": iluvatar.splitlines()}
    # Sugon/Hygon DCU (AMD-like): hy-smi, or rocm-smi, prints "DCU[0] : Card series: <name>"
    # lines (format from ROCm's rocm-smi; hy-smi's is a guess).
    dcu = run("hy-smi", "--showproductname") or run("rocm-smi", "--showproductname")
    if dcu:
        names = [line.split("Card series:", 1)[1].strip() for line in dcu.splitlines() if "Card series:" in line]
        return {"kind": "dcu", "devices": names or ["DCU"]}
    return {"kind": "none", "devices": []}

service = dict(line.split("=", 1) for line in (read(STATE + "/" + SERVICE + ".status") or "").splitlines() if "=" in line)
service_alive = alive(STATE + "/" + SERVICE + ".pid")
print(json.dumps({
    "hostname": socket.gethostname(),
    "initStarted": init_started(),
    "provisioned": read(STATE + "/provisioned"),
    "accelerator": accelerator(),
    "hostKeys": {
        "system": fingerprint("/etc/ssh/ssh_host_ed25519_key.pub"),
        "stable": fingerprint(KEYS + "/ssh_host_ed25519_key.pub"),
    },
    "sshd": {"mode": read(STATE + "/sshd.mode"), "running": alive(STATE + "/sshd.pid")},
    "service": {
        "name": SERVICE,
        "state": service.get("state", "stopped") if service_alive else "stopped",
        "detail": service.get("detail"),
    },
}, ensure_ascii=False))

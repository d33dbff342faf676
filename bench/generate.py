#!/usr/bin/env python3
"""Write a synthetic devbox-gen config repo with N varied users.

    python3 bench/generate.py N DIR [--seed S] [--force]

DIR gets devbox.toml, users/*.toml and a copy of this repository's schema/ (so every
user file's `#:schema ../schema/user.schema.json` line resolves). The users cover what
the tool must get right: GPU boxes of several GKE types and counts, arm64, stopped and
archived boxes, custom storage classes, digest-pinned images, custom tailnet hostnames
and key Secrets, tags, several SSH keys each (ed25519, ecdsa P-256/384/521 and
RSA-3072), environment values that YAML 1.1 would misread (`on`, `yes`, `n`,
`0755`, `1e3`, `~`, `null`, `1.20`, ...), and ML boxes: shared memory sized to fit
their memory, Spot VMs, read-only datasets and time-shared GPUs.

The SSH public keys are real: every ed25519 key is a point of the curve's prime-order
subgroup, every ECDSA key a point of its NIST curve, computed here from the seed (no
ssh-keygen per user, and no private key anywhere: nobody can log in with them). RSA-3072
keys come from a small pool made once with ssh-keygen (below): 1536-bit primes take
seconds each to find in Python. The same seed gives byte-identical files, and 10,000
users take a few seconds.

Standard library only; Python >= 3.9.
"""

from __future__ import annotations

import argparse
import base64
import random
import shutil
import struct
import sys
from pathlib import Path

MAX_NAME_LEN = 52  # src/validate/names.rs: 63 minus the 11 of controller-revision-hash
# A box with working hours has a CronJob NAME-wake, and a CronJob's name has at most 52
# characters (src/check/mod.rs, MAX_CRON_JOB_NAME_LEN).
MAX_NAME_LEN_WITH_HOURS = 52 - len("-wake")

# ---------------------------------------------------------------------------
# SSH public keys
# ---------------------------------------------------------------------------


def _string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


# Ed25519 (RFC 8032): -x^2 + y^2 = 1 + d x^2 y^2 over GF(2^255 - 19).
ED_P = 2**255 - 19
ED_D = (-121665 * pow(121666, ED_P - 2, ED_P)) % ED_P
ED_SQRT_M1 = pow(2, (ED_P - 1) // 4, ED_P)


def _ed_double(X, Y, Z):
    """Doubling in projective coordinates (a = -1): no inversion."""
    A, B = X * X % ED_P, Y * Y % ED_P
    C = 2 * Z * Z % ED_P
    E = ((X + Y) * (X + Y) - A - B) % ED_P
    G = (B - A) % ED_P
    F = (G - C) % ED_P
    H = (-A - B) % ED_P
    return E * F % ED_P, G * H % ED_P, F * G % ED_P


def ed25519_key(rng: random.Random) -> bytes:
    """A random point of the prime-order subgroup, encoded as RFC 8032 says."""
    while True:
        y = rng.getrandbits(255) % ED_P
        yy = y * y % ED_P
        u, v = (yy - 1) % ED_P, (ED_D * yy + 1) % ED_P
        # x = sqrt(u / v) with one exponentiation (RFC 8032, 5.1.3).
        v3 = v * v * v % ED_P
        x = u * v3 * pow(u * v3 * v3 * v % ED_P, (ED_P - 5) // 8, ED_P) % ED_P
        vxx = v * x * x % ED_P
        if vxx == (-u) % ED_P:
            x = x * ED_SQRT_M1 % ED_P
        elif vxx != u:
            continue  # y is not the ordinate of a curve point
        X, Y, Z = x, y, 1
        for _ in range(3):  # times the cofactor 8: into the prime-order subgroup
            X, Y, Z = _ed_double(X, Y, Z)
        z_inv = pow(Z, ED_P - 2, ED_P)
        x, y = X * z_inv % ED_P, Y * z_inv % ED_P
        if x == 0:
            continue  # small-order point: the identity or (0, -1)
        encoded = bytearray(y.to_bytes(32, "little"))
        encoded[31] |= (x & 1) << 7
        return _string(b"ssh-ed25519") + _string(bytes(encoded))


# NIST prime curves y^2 = x^3 - 3x + b (cofactor 1: every point is in the group).
NIST = {
    "nistp256": (
        2**256 - 2**224 + 2**192 + 2**96 - 1,
        0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B,
        32,
    ),
    "nistp384": (
        2**384 - 2**128 - 2**96 + 2**32 - 1,
        0xB3312FA7E23EE7E4988E056BE3F82D19181D9C6EFE8141120314088F5013875AC656398D8A2ED19D2A85C8EDD3EC2AEF,
        48,
    ),
    "nistp521": (
        2**521 - 1,
        0x0051953EB9618E1C9A1F929A21A0B68540EEA2DA725B99B315F3B8B489918EF109E156193951EC7E937B1652C0BD3BB1BF073573DF883D2C34F1EF451FD46B503F00,
        66,
    ),
}


def ecdsa_key(rng: random.Random, curve: str) -> bytes:
    p, b, size = NIST[curve]
    while True:
        x = rng.getrandbits(p.bit_length()) % p
        rhs = (x * x * x - 3 * x + b) % p
        y = pow(rhs, (p + 1) // 4, p)  # p = 3 (mod 4) for all three curves
        if y * y % p != rhs or y == 0:
            continue
        if rng.getrandbits(1):
            y = p - y
        point = b"\x04" + x.to_bytes(size, "big") + y.to_bytes(size, "big")
        name = b"ecdsa-sha2-" + curve.encode()
        return _string(name) + _string(curve.encode()) + _string(point)


# RSA-3072 public keys made once with `ssh-keygen -t rsa -b 3072` (the private halves
# were thrown away). Finding 1536-bit primes in Python takes seconds per key, so users
# share these few; none lists the same one twice.
RSA_3072_POOL = [
    "AAAAB3NzaC1yc2EAAAADAQABAAABgQC7F6yAIl+qzeQPMR1mV/V/7OdUT3JNMDo8v1jLZN8rxig+9BDpOdTNoDnG5VrGaPtUVtydDuUEeLW0GCLroIaLjEjvLnu1JDGKWroYsEOJTa5fmC8b0lFu9NBKwJbKYfsUNHhnORYvKKyN+yIAOFNBbpa7KlvnmK+YgAL+7xWZfOhRk3bIPy+nqhM5PPU/B6sQ+2bvRK7apTfqWGUhitzQQ/x6PkDrEubNYtGosXWc6eGI6pK62ga5AOBIQVfycZjfN8W0kxmJBjIRRQQuz3ijtEDrxLVV7zMy1P8o6TI/WeOvcFHRE+peYC6u1W8qYq7vcmVde57SEgPN9iRZyxg+l8WR69QPPh1aXCE0b20ForPkEXcIaEq7PjAzCbTZbuMjg6rDaCqMKiatqxImOfiHtyZgpUI7IKSNQEBZ3ETltoSDraNQSnjcug5WjNoKP5jFpDSh7QCtk49jhYfbhPRD1ymYnvVucA97Ka1XqaldtnowMDyZ7JfbyyRcyOOHSWE=",
    "AAAAB3NzaC1yc2EAAAADAQABAAABgQDqImLysZKBuTJYyrp6wi1DMx6gyr3bypD1i5Ta6dLSwxycjprg5zEFRWVVywzGRY1J3Ur3mE7rx1Sq2jgl3hQk+WyqtU4m/pNYNXRG/F/m/t3Z3NdYI/RxRPqctTqW2mFHIl3ZHQZOLAbChgH/gcDPatth5wcRjVMoqwpwZFxCurcBjeyhzvEE1MloRM30p3RE1flY+s8HD1covDenjNLVKuHsNEkKeVcTQS0/2PdOvAdpaRvT3xZrjj78vFsM5s4FYFOZeoNjaZwlML1qwfhN49jbHAXH8Nqx9V0L1LezqCdM7U+gD6QigWDa9KdNEJJajvH9Qob2E6za5hbBn/2ab11fmbDHVlfvaZ+5nwsBgzTdN2Hwo9+sVTqWuwyicHRxW3pCnWDeXdw0n83viZcc1nl6/+3m+feQ1NnSC5nvs+ju/ptda9FJQXgsCz9fUFZPA29t0tKk5pmQxrwYgl3DVbhl5YQHiO8E0HUZu1cRRorGRfVSeEDg51BQf9meaws=",
    "AAAAB3NzaC1yc2EAAAADAQABAAABgQCMQsHp5XBHZbZ6oHHxmOInCcoOakNzmfChf0BcTkyhEfhFOplJPa1ufawoXLh3r6DKQnt8n6xRANVFUZrEstnKfxvaG3m7IFKcgZBCgOj7RaDZGy1Ky1yE9QAN2sB2V5T6cKHxruo3tVcPWQUs/aF4gYyRYh4wQdeOjdHFhiSVYskVMdowtWMv/Gh4OkAwKDyyoywa3x/pfiyybhbIfUAKj3KeXcEw78LCLe1Zz8KvQAN0wXEk/3jq1kFir+kwDszQQL6gi8H6OajeWJNhhyln0LXMnBFwVJDyrnluCJLHUD+brJSH8bu/3tu74tTKGU9eTU1IRvpsoIaQPfV6uKhByRGirxL65yGaemiisdfrPaIXkO7VsZdjcxAV2eLNS7DHfgCvmkHRCiwgVo/+ndCP4Nk8dgwZhjyAlVu2GqKwRn9OfqXhuBRJWFUXQHabCwRkGxYoCh01T3GyJ9vwPKZOF56XhOGNjnei7UljzjKsdqg+m6IHq4wNWCcXFIAtibU=",
    "AAAAB3NzaC1yc2EAAAADAQABAAABgQDObTQWIWcOK5rp90uJL2UD3p1idEOsDxoTFH8H4BsaOFHnRY7MtPIOM0XFs2a7tVfNbfbTAIsr/tU4yr1jetVP8AwWCVvdj1KsV+wyfcehxYcZfC7nXtSYlH+FGqxvRXNNq7LE4cSEFdQxlKTL8nJkG+l2ML0Rd8aFyCIBstJ/Iga9KqTUlBjPyH2IvP7dKQM6vfj7lcLyQhQdhG/2phezZ0qpoFqAjqceG17bmS+EXcvt/xXOXNR8zBs4AX+J/O5ucdM0IDq91f0WEW/exxIogis6N959TvLWJ2kizUZnU/QLOCNTQ1X15oPsr/iAAG71zyItoPWcfJ8LxDF4RZfjqeVNi9irL2VaudqceBkPmtZxbw+ZxfOUUAqzmTp3yJ8a9JYhwVod3aVeaIIYjjz5kh+Svba2/UzmAoyACDRyuTGEUciDjZEci+KfXvaNYjsojQrZQyVGDEFvT2NGwXkxlc8fvxjh7mZlQbAS4+h4Ixrr4xd3E8iH8DaZ3EzXBFE=",
]


def rsa_key(index: int) -> bytes:
    return base64.b64decode(RSA_3072_POOL[index])


def openssh_line(blob: bytes, comment: str, options: str = "") -> str:
    algorithm = blob[4 : 4 + struct.unpack(">I", blob[:4])[0]].decode()
    line = f"{algorithm} {base64.b64encode(blob).decode()} {comment}"
    return f"{options} {line}" if options else line


# ---------------------------------------------------------------------------
# What users write
# ---------------------------------------------------------------------------

# Word lists, laid out by hand (ruff format would put one word on a line).
# fmt: off
FIRST = [
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy",
    "mallory", "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter",
    "yusuf", "zoe", "amara", "bjorn", "chen", "dmitri", "esther", "fatima", "goran",
    "hiroshi", "ines", "jamal", "kirsi", "lucia", "mateo", "noor", "oskar", "priya",
    "quinn", "rahul", "sofia", "tomasz", "uma", "vera", "wei", "ximena", "yael", "zaid",
]
LAST = [
    "smith", "nguyen", "garcia", "mueller", "rossi", "kowalski", "tanaka", "okafor",
    "silva", "johansson", "dubois", "novak", "haddad", "kim", "patel", "oconnor",
    "fernandez", "ivanova", "lindqvist", "moreau", "schmidt", "yilmaz", "zhang", "ali",
]

# Values YAML 1.1 (PyYAML, Kubernetes' go-yaml v2 heritage) reads as something other
# than the string written: booleans, null, ints (octal, hex, binary, sexagesimal,
# underscores), floats, timestamps, and YAML syntax characters.
AMBIGUOUS = [
    "on", "On", "ON", "off", "Off", "OFF", "yes", "Yes", "YES", "no", "No", "NO",
    "y", "Y", "n", "N", "true", "True", "TRUE", "false", "False", "FALSE",
    "~", "null", "Null", "NULL", "",
    "0755", "0o755", "0x1F", "0b1010", "1_000", "+12", "-7", "190:20:30", "12:30",
    "1e3", "1E3", "6.8523015e+5", "1.20", ".5", "+.inf", "-.Inf", ".NaN", "1_000.5",
    "2001-12-14", "2001-12-14t21:59:43.10-05:00", "2024-06-01 12:00:00",
    "=", "<<", "*alias", "&anchor", "!tag", "%directive", "@at", "`backtick",
    "- item", "? key", "a: b", "#not-a-comment", "x #y", "{}", "[]", "{a: 1}", "[1, 2]",
    "|", ">", "'single'", '"double"', " leading space", "trailing space ",
    "tab\there", "line one\nline two", "ünïcödé ✓", "C:\\Users\\me",
]
ORDINARY = [
    "vim", "nvim", "emacs -nw", "https://pypi.org/simple", "4", "en_US.UTF-8",
    "/storage/jupyter/.cache", "localhost,127.0.0.1,.svc,.cluster.local", "debug",
    "--max-old-space-size=4096", "1", "0", "/opt/conda/bin:/usr/local/bin:/usr/bin:/bin",
]
ENV_NAMES = [
    "EDITOR", "VISUAL", "PIP_INDEX_URL", "JUPYTER_ENABLE_LAB", "OMP_NUM_THREADS", "NO_PROXY",
    "LANG", "XDG_CACHE_HOME", "LOG_LEVEL", "NODE_OPTIONS", "CUDA_VISIBLE_DEVICES", "PATH",
    "TF_CPP_MIN_LOG_LEVEL", "PYTHONUNBUFFERED", "HF_HUB_OFFLINE", "UMASK", "MLFLOW_TRACKING_URI",
    "WANDB_MODE", "GIT_PAGER", "TZ", "FEATURE_FLAG", "DEBUG", "VERBOSE", "RETRIES",
]
# fmt: on
GPUS = [
    ("nvidia-tesla-t4", [1, 2, 4]),
    ("nvidia-l4", [1, 2, 4, 8]),
    ("nvidia-tesla-a100", [1, 2, 4, 8, 16]),
    ("nvidia-a100-80gb", [1, 2, 4, 8]),
    ("nvidia-h100-80gb", [1, 2, 4, 8]),
    ("nvidia-tesla-v100", [1, 8]),
]
# Names, storage classes and quantities that are valid and that YAML 1.1 (or 1.2) would
# read as something else than a string if written unquoted.
AMBIGUOUS_NAMES = ["no", "on", "off", "yes", "y", "n", "true", "false", "null"]
STORAGE_CLASSES = ["premium-rwo", "standard", "hyperdisk-balanced", "fast.ssd.storage.example.com", "standard-rwo", "off"]
CPUS = ["1", "2", "500m", "2500m", "4", "8", "16", "32", "0.5", "1e1"]
MEMORIES = ["512Mi", "2Gi", "8Gi", "12Gi", "16Gi", "32Gi", "64Gi", "1.5Gi", "128Gi", "1e9"]
SIZES = ["1Gi", "20Gi", "100Gi", "200Gi", "500Gi", "1Ti", "1500Gi", "1e12"]
TAGS = ["tag:devbox", "tag:gpu", "tag:team-ml", "tag:team-infra", "tag:contractor", "tag:eu", "tag:us"]
REGISTRY = "us-docker.pkg.dev/acme/devbox"
GI = 1 << 30
UNITS = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": GI, "Ti": 1 << 40, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
DEFAULT_MEMORY = "16Gi"  # [defaults] resources in DEVBOX_TOML
SHM_SIZES = ["8Gi", "4Gi", "2Gi", "1Gi", "512Mi", "128Mi"]


def size_bytes(quantity: str) -> float:
    """A memory quantity of MEMORIES in bytes (the suffixes and `1e9` forms used here)."""
    for suffix in sorted(UNITS, key=len, reverse=True):
        if quantity.endswith(suffix):
            return float(quantity[: -len(suffix)]) * UNITS[suffix]
    return float(quantity)


def shm_that_fits(memory: str) -> str | None:
    """The largest of SHM_SIZES that leaves a quarter of `memory`, at least 1Gi, to the
    processes (src/validate/ml.rs); None when none does."""
    total = size_bytes(memory)
    room = total - max(GI, total / 4)
    return next((size for size in SHM_SIZES if size_bytes(size) <= room), None)


def toml_string(value: str) -> str:
    out = ['"']
    for ch in value:
        code = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\u{code:04X}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def toml_array(values: list[str], multiline: bool = False) -> str:
    if multiline and values:
        return "[\n" + "".join(f"  {toml_string(v)},\n" for v in values) + "]"
    return "[" + ", ".join(toml_string(v) for v in values) + "]"


def digest(rng: random.Random) -> str:
    return "sha256:" + f"{rng.getrandbits(256):064x}"


class Generator:
    def __init__(self, seed: int):
        self.seed = seed
        self.rng = random.Random(seed)
        self.names: set[str] = set()
        self.hostnames: set[str] = set()
        self.secrets: set[str] = set()

    def name(self, i: int) -> str:
        rng = self.rng
        first, last = rng.choice(FIRST), rng.choice(LAST)
        ambiguous = [n for n in AMBIGUOUS_NAMES if n not in self.names]
        if i % 23 == 11 and ambiguous:
            name = ambiguous[0]
        elif i % 97 == 5:
            # As long as the tool allows: 52 characters exactly, 47 with working hours.
            suffix = f"-{i}"
            longest = MAX_NAME_LEN_WITH_HOURS if self.has_hours(i) else MAX_NAME_LEN
            body = f"{first}-{last}-of-the-platform-team-working-on-{rng.choice(LAST)}-and-everything-else"
            body = body[: longest - len(suffix)]
            name = (body[:-1] + "x" if body.endswith("-") else body) + suffix
        elif i % 5 == 0:
            name = first
        elif i % 5 == 1:
            name = f"{first}-{last}"
        elif i % 5 == 2:
            name = f"{first[0]}{last}"
        elif i % 5 == 3:
            name = f"{first}{rng.randrange(2, 99)}"
        else:
            name = f"{first}-{last}-{rng.choice(['ml', 'infra', 'data', 'web', 'sre'])}"
        base, n = name, 2
        while name in self.names or len(name) > MAX_NAME_LEN:
            suffix = f"-{n}"
            name = base[: MAX_NAME_LEN - len(suffix)].rstrip("-") + suffix
            n += 1
        self.names.add(name)
        # Reserve the defaults now, so no custom value of a later user takes them.
        self.hostnames.add(f"{name}-devbox")
        self.secrets.add(f"{name}-ssh")
        return name

    def keys(self, name: str) -> list[str]:
        rng = self.rng
        count = rng.choice([2, 2, 3, 3, 4])
        lines = []
        used_rsa: set[int] = set()
        hosts = ["laptop", "desktop", "workstation", "ipad", "yubikey", "ci"]
        for k in range(count):
            roll = rng.random()
            if roll < 0.55:
                blob = ed25519_key(rng)
            elif roll < 0.7:
                blob = ecdsa_key(rng, "nistp256")
            elif roll < 0.8:
                blob = ecdsa_key(rng, "nistp384")
            elif roll < 0.85:
                blob = ecdsa_key(rng, "nistp521")
            else:
                choices = [j for j in range(len(RSA_3072_POOL)) if j not in used_rsa]
                if not choices:
                    blob = ed25519_key(rng)
                else:
                    j = rng.choice(choices)
                    used_rsa.add(j)
                    blob = rsa_key(j)
            comment = f"{name}@{hosts[k % len(hosts)]}"
            options = ""
            if rng.random() < 0.08:
                options = rng.choice(
                    ['from="10.0.0.0/8,192.168.0.0/16"', "no-agent-forwarding,no-X11-forwarding", 'environment="LANG=C.UTF-8"']
                )
            lines.append(openssh_line(blob, comment, options))
        return lines

    def env(self, i: int) -> dict[str, str]:
        rng = self.rng
        if i == 0:
            # The first user carries every ambiguous value, so any N >= 1 tests them all.
            return {f"AMBIGUOUS_{j:02d}": v for j, v in enumerate(AMBIGUOUS)}
        if rng.random() < 0.15:
            return {}
        names = rng.sample(ENV_NAMES, rng.randrange(1, 7))
        env = {}
        for k, var in enumerate(sorted(names)):
            env[var] = rng.choice(AMBIGUOUS) if k == 0 or rng.random() < 0.4 else rng.choice(ORDINARY)
        return env

    @staticmethod
    def ml(i: int, memory: str) -> list[str]:
        """The top-level ML keys of user `i`, by index (no draw from the generator, so the other
        fields are what they were before these existed)."""
        lines = []
        shm = shm_that_fits(memory) if i % 6 == 5 else None
        if shm:
            lines.append(f"shm = {toml_string(shm)}")
        if i % 7 == 3:
            lines.append("spot = true")
        elif i % 31 == 10:
            lines.append("spot = false")
        if i % 10 == 4:
            lines.append('datasets = ["imagenet", "coco"]')
        elif i % 5 == 2:
            lines.append('datasets = ["imagenet"]')
        elif i % 23 == 9:
            lines.append("datasets = []")
        return lines

    @staticmethod
    def has_hours(i: int) -> bool:
        """Whether user `i` has working hours (`[schedule]`): one in twelve."""
        return i % 12 == 0

    @staticmethod
    def autostop(i: int) -> list[str]:
        """`[idle]` and `[schedule]` of user `i`, by index like `ml` (no draw from the generator):
        a quarter of the users stop when idle, one in twelve on working hours in one of three
        zones, a few say "never" over nothing."""
        lines = []
        if i % 4 == 0:
            lines += ["", "[idle]", f"after = {toml_string(('2h', '90m', '1h30m', '1d')[i // 4 % 4])}"]
        elif i % 29 == 13:
            lines += ["", "[idle]", 'after = "never"']
        if Generator.has_hours(i):
            zone = ("Europe/Berlin", "America/New_York", "Asia/Kolkata")[i // 12 % 3]
            lines += ["", "[schedule]", f"timezone = {toml_string(zone)}", 'start = "08:30"', 'stop = "18:00"']
            if i % 24 == 0:
                lines.append('days = ["mon", "tue", "wed", "thu"]')
        return lines

    def user(self, i: int) -> tuple[str, str]:
        rng = self.rng
        name = self.name(i)
        lines = ["#:schema ../schema/user.schema.json"]
        first = name.split("-")[0]
        lines.append(f"# Synthetic user {i} (devbox-gen bench/generate.py, seed {self.seed}).")
        email = rng.choice([f"{name}@example.com", f"{first}+devbox@corp.example.org", f"{first}.{i}@mail.example.co.uk"])
        lines.append(f"email = {toml_string(email)}")

        state = "running"
        if i % 10 == 3 or (i % 10 != 7 and rng.random() < 0.05):
            state = "stopped"
        elif i % 10 == 7:
            state = "archived"
        if state != "running" or rng.random() < 0.2:
            lines.append(f"state = {toml_string(state)}")

        arm = i % 11 == 4 or rng.random() < 0.05
        if arm:
            lines.append('arch = "arm64"')
            lines.append(f'image = "{REGISTRY}/jupyter-arm64:2024.{rng.randrange(1, 13):02d}"')
        else:
            roll = rng.random()
            if i % 6 == 1 or roll < 0.15:
                lines.append(f'image = "{REGISTRY}/jupyter@{digest(rng)}"')
            elif roll < 0.25:
                lines.append(f'image = "{REGISTRY}/jupyter-cuda:12.4@{digest(rng)}"')
            elif roll < 0.35:
                lines.append(f'image = "registry.example.com:5000/ml/notebook:v{rng.randrange(1, 9)}.{rng.randrange(0, 20)}"')
            elif roll < 0.45:
                lines.append('arch = "amd64"')

        if i % 13 == 2:
            lines.append('cluster = "staging"')

        # The resources are drawn first, so that shm fits the memory; they are written after
        # the top-level keys below.
        resources: list[str] = []
        memory = DEFAULT_MEMORY
        if rng.random() < 0.6:
            cpu, chosen = rng.choice(CPUS), rng.choice(MEMORIES)
            if rng.random() < 0.3:
                resources.append(f"resources = {{ cpu = {toml_string(cpu)}, memory = {toml_string(chosen)} }}")
                memory = chosen
            else:
                resources += ["", "[resources]", f"cpu = {toml_string(cpu)}"]
                if rng.random() < 0.8:
                    resources.append(f"memory = {toml_string(chosen)}")
                    memory = chosen
        lines += self.ml(i, memory)
        lines += resources

        if not arm and (i % 8 == 2 or rng.random() < 0.1):
            gpu_type, counts = GPUS[(i // 8 + rng.randrange(len(GPUS))) % len(GPUS)]
            lines += ["", "[gpu]", f"type = {toml_string(gpu_type)}"]
            count = rng.choice(counts)
            if count != 1 or rng.random() < 0.5:
                lines.append(f"count = {count}")
            # GKE gives a container one GPU when it is shared.
            if count == 1 and i % 3 == 0:
                lines.append('sharing = "time-sharing"')
                if i % 2 == 0:
                    lines.append(f"clients = {(2, 4, 8)[i % 9 // 3]}")

        if i % 9 == 6 or rng.random() < 0.3:
            lines += ["", "[home]", f"size = {toml_string(rng.choice(SIZES))}"]
            if i % 9 == 6 or rng.random() < 0.5:
                lines.append(f"storage_class = {toml_string(rng.choice(STORAGE_CLASSES))}")

        lines += self.autostop(i)

        lines += ["", "[ssh]", f"authorized_keys = {toml_array(self.keys(name), multiline=True)}"]
        if i % 7 == 5 or rng.random() < 0.1:
            secret = rng.choice([f"{name}-github", f"github-key.{name}", f"{name}-deploy-key"])
            if len(secret) > 253 or secret in self.secrets:
                secret = f"github-{i}"
            self.secrets.add(secret)
            lines.append(f"key_secret = {toml_string(secret)}")

        tailscale = []
        if i % 4 == 1 or rng.random() < 0.2:
            candidates = [name, f"{first}-box-{i}", f"ws-{i}", f"{name}-ts"]
            hostname = next((h for h in candidates if h not in self.hostnames and len(h) <= 63), f"devbox-{i}")
            self.hostnames.add(hostname)
            tailscale.append(f"hostname = {toml_string(hostname)}")
        if rng.random() < 0.35:
            tailscale.append(f"tags = {toml_array(sorted(rng.sample(TAGS, rng.randrange(0, 4))))}")
        if tailscale:
            lines += ["", "[tailscale]"] + tailscale

        env = self.env(i)
        if env:
            lines += ["", "[env]"] + [f"{k} = {toml_string(v)}" for k, v in env.items()]
        return name, "\n".join(lines) + "\n"


DEVBOX_TOML = """\
#:schema ./schema/devbox.schema.json
# Synthetic organisation settings (devbox-gen bench/generate.py, seed {seed}).
namespace = "devboxes"
gitops = ["argocd", "flux"]

[defaults]
image = "us-docker.pkg.dev/acme/devbox/jupyter:2024.06"
arch = "amd64"
cluster = "prod"
resources = {{ cpu = "4", memory = "16Gi" }}
home = {{ size = "100Gi", storage_class = "standard-rwo" }}
tailscale = {{ tags = ["tag:devbox"] }}

[defaults.env]
PIP_DISABLE_PIP_VERSION_CHECK = "1"
JUPYTER_ENABLE_LAB = "yes"

[tailscale]
image = "ghcr.io/tailscale/tailscale:v1.80.3"
auth_key_secret = "tailscale-auth"

[datasets.imagenet]
claim = "imagenet-ro"

[datasets.coco]
claim = "coco-2017-ro"
mount = "/data/coco"

[repo]
url = "https://github.com/acme/devboxes.git"
revision = "main"

# Per namespace of each cluster; scaled with N so that every N fits, about twice over.
[quota]
cpu = "{quota_cpu}"
memory = "{quota_memory}Gi"
gpu = {quota_gpu}
storage = "{quota_storage}Gi"

[[clusters]]
name = "prod"
server = "https://kubernetes.default.svc"

[[clusters]]
name = "staging"
server = "https://staging.k8s.example.com:6443"
"""


def generate(count: int, root: Path, seed: int) -> None:
    generator = Generator(seed)
    users = root / "users"
    users.mkdir(parents=True, exist_ok=True)
    # Twice the boxes' average (about 4 CPUs, 12Gi, 0.6 GPUs running, 260Gi of home each), plus
    # room for a few of the largest (32 CPUs, 128Gi, 16 GPUs, 1500Gi) when N is small.
    quotas = {"quota_cpu": 8 * count + 64, "quota_memory": 24 * count + 256, "quota_gpu": count + 32, "quota_storage": 512 * count + 4096}
    (root / "devbox.toml").write_text(DEVBOX_TOML.format(seed=seed, **quotas))
    schema = Path(__file__).resolve().parent.parent / "schema"
    if schema.is_dir():
        shutil.copytree(schema, root / "schema", dirs_exist_ok=True)
    else:
        print(f"warning: {schema} not found; the #:schema lines will not resolve", file=sys.stderr)
    for i in range(count):
        name, text = generator.user(i)
        (users / f"{name}.toml").write_text(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("count", type=int, metavar="N", help="how many users")
    parser.add_argument("dir", type=Path, metavar="DIR", help="where to write the config repo")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1); same seed, same files")
    parser.add_argument("--force", action="store_true", help="replace users/, out/ and devbox.toml in a non-empty DIR")
    args = parser.parse_args()
    if args.count < 0:
        parser.error("N must be >= 0")
    if args.dir.exists() and any(args.dir.iterdir()):
        if not args.force:
            parser.error(f"{args.dir} is not empty (use --force to replace its users/ and out/)")
        for sub in ("users", "out"):
            if (args.dir / sub).is_dir():
                shutil.rmtree(args.dir / sub)
    generate(args.count, args.dir, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())

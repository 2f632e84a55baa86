#!/usr/bin/env python3
"""Port one of the Python-2-only Tencent COS JSON API SDKs to Python 3, for the
compatibility tests only (tests/compat/cos_helpers.py):

  * qcloud_cos_v4 0.0.9  = COS JSON API v4 (/files/v2)
  * qcloud-cos    3.3.6  = COS JSON API v3 (/files/v1)

Both sdists ship a package named `qcloud_cos` whose setup.py refuses Python 3,
so `pip install` cannot be used. scripts/setup-venv.sh fetches the sdist with
pip (hash-pinned) and calls this script on the unpacked tree:

    port-cos-sdk.py SRC DEST --name qcloud_cos_v4 --version 0.0.9

SRC is the unpacked sdist (holding PKG-INFO and qcloud_cos/); the port is
written to DEST/qcloud_cos/ (DEST is replaced). Nothing of the SDK is kept in
the repository.

The port changes syntax and str/bytes handling only, never what goes on the
wire:
  1. lib2to3 fixers (Python <= 3.12 ships lib2to3): print, has_key,
     unicode/basestring, urllib.quote -> urllib.parse.quote, Queue -> queue,
     dict.iteritems, except, <>, xrange;
  2. implicit relative imports (`from cos_auth import X`, `import cos_auth`,
     also the function-local `from threadpool import SimpleThreadPool`) become
     explicit relative imports, so the package can be imported under any name
     (the tests load v3 and v4 side by side under different names);
  3. literal edits where Python 2 mixed str and bytes: the signer
     (cos_auth.Auth.app_sign: bucket / SecretId / HMAC input / base64 output)
     and the URL builder (cos_op.BaseOp._build_url), collections.Mapping /
     Iterable -> collections.abc, `is not 0` -> `!= 0`. Every edit must match
     exactly as often as expected, otherwise the port fails loudly (a changed
     sdist is never half-ported);
  4. a self-check: the ported package is imported under a private name and its
     Auth.app_sign must reproduce the worked example of
     /work/shared/specs/client-sdks.md section 3.3 byte for byte.

Exit status 0 on success; DEST/qcloud_cos/CHUAN-PORT records the source
name/version and the sha256 of this script.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import re
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

FIXERS = [
    "lib2to3.fixes.fix_" + n
    for n in (
        "print",
        "has_key",
        "unicode",
        "basestring",
        "urllib",
        "imports",
        "dict",
        "except",
        "ne",
        "xrange",
        "raise",
    )
]

# (file, old, new, how many times old must occur in the 2to3 output)
# Both SDKs share the signer and the URL builder up to whitespace, so the
# edits are written as regular expressions tolerant of the alignment spaces.
EDITS: list[tuple[str, str, str, int]] = [
    # signer: keep bucket / SecretId as str so "%s" formatting does not give "b'...'"
    ("cos_auth.py", r"(bucket\s*=\s*)bucket\.encode\('utf8'\)", r"\1bucket", 1),
    ("cos_auth.py", r"self\.cred\.get_secret_id\(\)\.encode\('utf8'\)", "self.cred.get_secret_id()", 1),
    # HMAC-SHA1 over the UTF-8 bytes of the plain text; sign = mac || plain (bytes)
    ("cos_auth.py", r"hmac\.new\(secret_key,\s*plain_text,", "hmac.new(secret_key, plain_text.encode('utf8'),", 1),
    ("cos_auth.py", r"hmac_digest\s*\+\s*plain_text\b", "hmac_digest + plain_text.encode('utf8')", 1),
    # the Authorization header / ?sign= value is text
    ("cos_auth.py", r"base64\.b64encode\(sign_hex\)", "base64.b64encode(sign_hex).decode('ascii')", 1),
    # URL builder: '%s/%s/%s%s' % (end_point, appid, bucket, cos_path) must be text
    ("cos_op.py", r"(bucket\s*=\s*)bucket\.encode\('utf8'\)", r"\1bucket", 1),
    ("cos_op.py", r"\.rstrip\('/'\)\.encode\('utf8'\)", ".rstrip('/')", 1),
    # collections ABCs moved (removed from `collections` in Python 3.10)
    ("cos_request.py", r"\bcollections\.Mapping\b", "collections.abc.Mapping", 1),
    ("cos_request.py", r"\bcollections\.Iterable\b", "collections.abc.Iterable", 1),
    ("cos_request.py", r"(?m)^import collections\s*$", "import collections\nimport collections.abc", 1),
]

SIBLING = r"(cos_\w+|threadpool)"

# client-sdks.md section 3.3, worked example
EXAMPLE = dict(
    appid=1250000000,
    secret_id="AKIDexample",
    secret_key="secretKEY",
    bucket="mybucket",
    path="/dir/hello.txt",
    t=1700000000,
    r=123456789,
    sign_more="bZTQ7KifeX4HKi6myFpbdJQ2y6BhPTEyNTAwMDAwMDAmaz1BS0lEZXhhbXBsZSZlPTE3MDAwMDAzMDAmdD0xNzAwMDAwMDAwJnI9MTIzNDU2Nzg5JmY9LzEyNTAwMDAwMDAvbXlidWNrZXQvZGlyL2hlbGxvLnR4dCZiPW15YnVja2V0",
    sign_once="QETRr28f+I37R0LVPxweVUfC7dxhPTEyNTAwMDAwMDAmaz1BS0lEZXhhbXBsZSZlPTAmdD0xNzAwMDAwMDAwJnI9MTIzNDU2Nzg5JmY9LzEyNTAwMDAwMDAvbXlidWNrZXQvZGlyL2hlbGxvLnR4dCZiPW15YnVja2V0",
)


class PortError(RuntimeError):
    pass


def read_pkg_info(src: Path) -> dict[str, str]:
    info = {}
    p = src / "PKG-INFO"
    if not p.is_file():
        raise PortError(f"{src}: no PKG-INFO (not an unpacked sdist?)")
    for line in p.read_text(encoding="utf-8", errors="replace").splitlines():
        if ":" in line and not line.startswith(" "):
            k, v = line.split(":", 1)
            info.setdefault(k.strip(), v.strip())
    return info


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def refactor_tool():
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=PendingDeprecationWarning)
    try:
        from lib2to3.refactor import RefactoringTool
    except ImportError as e:  # Python >= 3.13
        raise PortError(f"lib2to3 is not available in Python {sys.version.split()[0]} (needs <= 3.12): {e}")
    return RefactoringTool(FIXERS)


def port_file(rt, path: Path, edits_done: dict) -> None:
    text = path.read_text(encoding="utf-8")
    if not text.endswith("\n"):
        text += "\n"
    new = str(rt.refactor_string(text, path.name))
    # implicit relative imports -> explicit (also inside functions)
    new = re.sub(r"(?m)^(\s*)from " + SIBLING + r"(\s+)import\b", r"\1from .\2\3import", new)
    new = re.sub(r"(?m)^(\s*)import " + SIBLING + r"\s*$", r"\1from . import \2", new)
    new = re.sub(r"\bis not 0\b", "!= 0", new)
    for fname, old, rep, count in EDITS:
        if fname != path.name:
            continue
        new, n = re.subn(old, rep, new)
        edits_done[(fname, old)] = n
    path.write_text(
        "# Ported to Python 3 by chuan scripts/port-cos-sdk.py (syntax and str/bytes only;\n"
        "# the wire protocol is unchanged). Not part of the repository.\n" + new,
        encoding="utf-8",
    )


def self_check(pkg_dir: Path) -> None:
    """Import the port under a private name and check the signer against the
    worked example (fixed clock and random number)."""
    name = "_chuan_cos_port_check_" + hashlib.sha1(str(pkg_dir).encode()).hexdigest()[:8]
    spec = importlib.util.spec_from_file_location(
        name, pkg_dir / "__init__.py", submodule_search_locations=[str(pkg_dir)]
    )
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    try:
        spec.loader.exec_module(mod)
        auth_mod = sys.modules[f"{name}.cos_auth"]
        # every module must import (cos_op pulls the rest; threadpool is lazy in v4)
        for f in sorted(pkg_dir.glob("*.py")):
            if f.stem != "__init__":
                importlib.import_module(f"{name}.{f.stem}")
        ex = EXAMPLE
        cred = mod.CredInfo(ex["appid"], ex["secret_id"], ex["secret_key"])
        auth = mod.Auth(cred)
        saved_time, saved_randint = auth_mod.time.time, auth_mod.random.randint
        auth_mod.time.time = lambda: ex["t"]
        auth_mod.random.randint = lambda a, b: ex["r"]
        try:
            more = auth.sign_more(ex["bucket"], ex["path"], ex["t"] + 300)
            once = auth.sign_once(ex["bucket"], ex["path"])
        finally:
            auth_mod.time.time, auth_mod.random.randint = saved_time, saved_randint
        if more != ex["sign_more"] or once != ex["sign_once"]:
            raise PortError(f"ported signer differs from the worked example:\n  more={more!r}\n  once={once!r}")
    finally:
        for k in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
            del sys.modules[k]


def port(src: Path, dest: Path, name: str, version: str) -> Path:
    info = read_pkg_info(src)
    if norm(info.get("Name", "")) != norm(name) or info.get("Version") != version:
        raise PortError(f"{src}: PKG-INFO says {info.get('Name')} {info.get('Version')}, expected {name} {version}")
    src_pkg = src / "qcloud_cos"
    if not (src_pkg / "cos_auth.py").is_file() or not (src_pkg / "cos_op.py").is_file():
        raise PortError(f"{src_pkg}: not the qcloud_cos package (cos_auth.py / cos_op.py missing)")

    dest.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".port-", dir=dest))
    try:
        pkg = work / "qcloud_cos"
        shutil.copytree(src_pkg, pkg, ignore=shutil.ignore_patterns("*.pyc", "__pycache__"))
        rt = refactor_tool()
        done: dict = {}
        for f in sorted(pkg.glob("*.py")):
            port_file(rt, f, done)
        wrong = [
            f"{fname}: /{old}/ matched {done.get((fname, old), 0)} times, expected {count}"
            for fname, old, _rep, count in EDITS
            if done.get((fname, old), 0) != count
        ]
        if wrong:
            raise PortError("the sdist does not look like the one this port was written for:\n  " + "\n  ".join(wrong))
        for f in sorted(pkg.glob("*.py")):
            compile(f.read_text(encoding="utf-8"), str(f), "exec")
        self_check(pkg)
        for cache in pkg.glob("__pycache__"):
            shutil.rmtree(cache)
        script_sha = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()
        (pkg / "CHUAN-PORT").write_text(f"{name}=={version} port-cos-sdk.py sha256:{script_sha}\n")
        target = dest / "qcloud_cos"
        if target.exists():
            shutil.rmtree(target)
        os.rename(pkg, target)
        return target
    finally:
        shutil.rmtree(work, ignore_errors=True)


def marker_text(name: str, version: str) -> str:
    script_sha = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()
    return f"{name}=={version} port-cos-sdk.py sha256:{script_sha}\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("src", nargs="?", type=Path, help="unpacked sdist (holds PKG-INFO and qcloud_cos/)")
    ap.add_argument("dest", nargs="?", type=Path, help="directory that receives qcloud_cos/")
    ap.add_argument("--name", required=True, help="distribution name, e.g. qcloud_cos_v4")
    ap.add_argument("--version", required=True)
    ap.add_argument(
        "--print-marker",
        action="store_true",
        help="only print what DEST/qcloud_cos/CHUAN-PORT holds after a port by this script",
    )
    args = ap.parse_args(argv)
    if args.print_marker:
        sys.stdout.write(marker_text(args.name, args.version))
        return 0
    if args.src is None or args.dest is None:
        ap.error("SRC and DEST are required")
    try:
        target = port(args.src, args.dest, args.name, args.version)
    except PortError as e:
        print(f"port-cos-sdk: {e}", file=sys.stderr)
        return 1
    print(f"port-cos-sdk: {args.name} {args.version} -> {target}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

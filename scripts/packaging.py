#!/usr/bin/env python3
"""The packaging steps of scripts/package.sh and the checks of scripts/package-test.sh that are
easier in Python than in shell. Standard library only (Python >= 3.11, for tomllib).

    python3 scripts/packaging.py version                  # Cargo.toml's version
    python3 scripts/packaging.py check-versions [--dist DIR]
    python3 scripts/packaging.py set-version X.Y.Z        # for a maintainer cutting a release
    python3 scripts/packaging.py archives --dist DIR
    python3 scripts/packaging.py npm-stage --dist DIR --out DIR
    python3 scripts/packaging.py oci --dist DIR --out DIR [--revision SHA] [--epoch S]
    python3 scripts/packaging.py server-json --dist DIR
    python3 scripts/packaging.py npm-registry --dir DIR --port-file FILE --log FILE
    python3 scripts/packaging.py check-server-json [--dist DIR]

One version number is used everywhere: Cargo.toml's. The files that carry it literally (so that
they read as what they are) are checked against it by check-versions, and set-version rewrites
them all: Cargo.toml and Cargo.lock, packaging/npm/openclaw-mcp-rs/package.json (its version and
the versions of its platform packages), packaging/mcpb/manifest.json, server.json and the
Dockerfile's label. With --dist, the built artifacts are checked too: every npm tarball's
package.json, the .mcpb's manifest, the OCI image's labels and dist/server.json.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import http.server
import io
import json
import os
import re
import shutil
import sys
import tarfile
import time
import tomllib
import urllib.parse
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REGISTRY_NAME = "io.github.openclaw-mcp/openclaw-mcp-rs"
REPOSITORY = "https://github.com/openclaw-mcp/openclaw-mcp-rs"
IMAGE = "ghcr.io/openclaw-mcp/openclaw-mcp-rs"
NPM_NAME = "openclaw-mcp-rs"
SERVER_SCHEMA_URL = "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json"

# Every binary we ship, by the name npm gives its platform (process.platform-process.arch).
# dist/bin/<name>/<exe> is where scripts/package.sh puts each one.
PLATFORMS = {
    "linux-x64": {"triple": "x86_64-unknown-linux-musl", "os": "linux", "cpu": ["x64"], "exe": "openclaw-mcp",
                  "oci": {"architecture": "amd64", "os": "linux"}, "what": "Linux x64 (static, musl)"},
    "linux-arm64": {"triple": "aarch64-unknown-linux-musl", "os": "linux", "cpu": ["arm64"], "exe": "openclaw-mcp",
                    "oci": {"architecture": "arm64", "os": "linux", "variant": "v8"},
                    "what": "Linux arm64 (static, musl)"},
    "darwin-x64": {"triple": "x86_64-apple-darwin", "os": "darwin", "cpu": ["x64"], "exe": "openclaw-mcp",
                   "what": "macOS 11+ on Intel"},
    "darwin-arm64": {"triple": "aarch64-apple-darwin", "os": "darwin", "cpu": ["arm64"], "exe": "openclaw-mcp",
                     "what": "macOS 11+ on Apple silicon"},
    "darwin-universal": {"triple": "universal2-apple-darwin", "exe": "openclaw-mcp",
                         "what": "macOS 11+, Intel and Apple silicon"},
    # Windows on Arm runs the x64 binary under emulation, so the package is installed there too.
    "win32-x64": {"triple": "x86_64-pc-windows-gnu", "os": "win32", "cpu": ["x64", "arm64"], "exe": "openclaw-mcp.exe",
                  "what": "Windows 10+ x64 (and Windows on Arm, emulated)"},
}
NPM_PLATFORMS = ["darwin-arm64", "darwin-x64", "linux-arm64", "linux-x64", "win32-x64"]
ARCHIVES = ["linux-x64", "linux-arm64", "darwin-universal", "win32-x64"]
MCPB_PLATFORMS = {"linux-x64": "linux", "darwin-universal": "darwin", "win32-x64": "win32"}

NPM_MAIN = ROOT / "packaging/npm/openclaw-mcp-rs"
MANIFEST = ROOT / "packaging/mcpb/manifest.json"
SERVER_JSON = ROOT / "server.json"


def die(msg: str) -> None:
    sys.exit(f"packaging: FAILED: {msg}")


def log(msg: str) -> None:
    print(f"packaging: {msg}", file=sys.stderr, flush=True)


def cargo_version() -> str:
    with open(ROOT / "Cargo.toml", "rb") as f:
        return tomllib.load(f)["package"]["version"]


def read_json(path: Path) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def write_json(path: Path, value: dict) -> None:
    path.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def built(dist: Path) -> dict[str, Path]:
    """The platforms whose binary is in dist/bin."""
    out = {}
    for name, p in PLATFORMS.items():
        path = dist / "bin" / name / p["exe"]
        if path.is_file():
            out[name] = path
    return out


# --- versions ----------------------------------------------------------------------------------------

def version_sources(version: str) -> list[tuple[str, str | None]]:
    """(where, the version found there) for every committed file that carries it."""
    found: list[tuple[str, str | None]] = []
    lock = (ROOT / "Cargo.lock").read_text(encoding="utf-8")
    m = re.search(r'\[\[package\]\]\nname = "openclaw-mcp"\nversion = "([^"]+)"', lock)
    found.append(("Cargo.lock (openclaw-mcp)", m.group(1) if m else None))
    pkg = read_json(NPM_MAIN / "package.json")
    found.append(("packaging/npm/openclaw-mcp-rs/package.json version", pkg.get("version")))
    for alias, spec in sorted(pkg.get("optionalDependencies", {}).items()):
        m = re.fullmatch(rf"npm:{NPM_NAME}@(.+)-([a-z0-9]+-[a-z0-9]+)", spec)
        found.append((f"packaging/npm/openclaw-mcp-rs/package.json {alias}", m.group(1) if m else None))
    found.append(("packaging/mcpb/manifest.json version", read_json(MANIFEST).get("version")))
    server = read_json(SERVER_JSON)
    found.append(("server.json version", server.get("version")))
    for p in server.get("packages", []):
        where = f"server.json {p['registryType']} package"
        if p["registryType"] == "oci":
            found.append((where, p["identifier"].rsplit(":", 1)[-1]))
        elif p["registryType"] == "mcpb":
            m = re.search(r"/download/v([^/]+)/openclaw-mcp-([^/]+)\.mcpb$", p["identifier"])
            found.append((where + " URL tag", m.group(1) if m else None))
            found.append((where + " URL file", m.group(2) if m else None))
            found.append((where + " version", p.get("version")))
        else:
            found.append((where, p.get("version")))
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    m = re.search(r'org\.opencontainers\.image\.version="([^"]+)"', dockerfile)
    found.append(("Dockerfile label org.opencontainers.image.version", m.group(1) if m else None))
    return found


def strip_platform(version: str) -> str | None:
    """0.1.0-linux-x64 -> 0.1.0 (a platform package's version is the release's plus its platform)."""
    for p in NPM_PLATFORMS:
        if version.endswith("-" + p):
            return version[: -len(p) - 1]
    return None


def dist_versions(dist: Path) -> list[tuple[str, str | None]]:
    found: list[tuple[str, str | None]] = []
    for tgz in sorted((dist / "npm").glob("*.tgz")):
        with tarfile.open(tgz) as t:
            pj = json.load(t.extractfile("package/package.json"))
        found.append((f"dist/npm/{tgz.name}", strip_platform(pj.get("version", "")) if pj.get("os") else pj.get("version")))
        if not pj.get("os"):
            for alias, spec in pj.get("optionalDependencies", {}).items():
                found.append((f"dist/npm/{tgz.name} {alias}", strip_platform(spec.split("@", 1)[1])))
    for mcpb in sorted(dist.glob("*.mcpb")):
        with zipfile.ZipFile(mcpb) as z:
            found.append((f"dist/{mcpb.name} manifest.json", json.loads(z.read("manifest.json")).get("version")))
    index = dist / "oci" / "index.json"
    if index.is_file():
        for m in read_json(index)["manifests"]:
            ref = m.get("annotations", {}).get("org.opencontainers.image.ref.name", "?")
            if m["mediaType"].endswith("manifest.v1+json"):
                manifest = read_json(dist / "oci" / "blobs" / "sha256" / m["digest"].split(":")[1])
                config = read_json(dist / "oci" / "blobs" / "sha256" / manifest["config"]["digest"].split(":")[1])
                labels = config["config"]["Labels"]
                found.append((f"dist/oci {ref} label org.opencontainers.image.version", labels.get("org.opencontainers.image.version")))
                found.append((f"dist/oci {ref} tag", ref.rsplit("-", 1)[0]))
    if (dist / "server.json").is_file():
        found.append(("dist/server.json version", read_json(dist / "server.json").get("version")))
    return found


def cmd_check_versions(args: argparse.Namespace) -> None:
    version = cargo_version()
    found = version_sources(version) + (dist_versions(Path(args.dist)) if args.dist else [])
    bad = [(w, v) for w, v in found if v != version]
    for where, v in found:
        print(f"  {'ok ' if v == version else 'BAD'} {where}: {v}")
    if bad:
        die(f"{len(bad)} place(s) do not carry Cargo.toml's version {version}; "
            f"`python3 scripts/packaging.py set-version {version}` rewrites them")
    print(f"check-versions: {len(found)} places carry {version}")


def cmd_set_version(args: argparse.Namespace) -> None:
    new = args.version
    # A prerelease suffix must not look like a platform package's ("0.2.0-linux-x64").
    if not re.fullmatch(r"\d+\.\d+\.\d+(-[0-9A-Za-z.]+)?", new):
        die(f"{new} is not a semantic version without build metadata (X.Y.Z or X.Y.Z-rc.1)")
    old = cargo_version()
    cargo = (ROOT / "Cargo.toml").read_text(encoding="utf-8")
    (ROOT / "Cargo.toml").write_text(cargo.replace(f'\nversion = "{old}"\n', f'\nversion = "{new}"\n', 1), encoding="utf-8")
    lock = (ROOT / "Cargo.lock").read_text(encoding="utf-8")
    (ROOT / "Cargo.lock").write_text(lock.replace(f'name = "openclaw-mcp"\nversion = "{old}"', f'name = "openclaw-mcp"\nversion = "{new}"'), encoding="utf-8")
    pkg = read_json(NPM_MAIN / "package.json")
    pkg["version"] = new
    pkg["optionalDependencies"] = {f"{NPM_NAME}-{p}": f"npm:{NPM_NAME}@{new}-{p}" for p in NPM_PLATFORMS}
    write_json(NPM_MAIN / "package.json", pkg)
    manifest = MANIFEST.read_text(encoding="utf-8")
    MANIFEST.write_text(re.sub(r'("version": )"[^"]+"', rf'\1"{new}"', manifest, count=1), encoding="utf-8")
    server = read_json(SERVER_JSON)
    server["version"] = new
    for p in server["packages"]:
        if p["registryType"] == "oci":
            p["identifier"] = f"{IMAGE}:{new}"
        elif p["registryType"] == "mcpb":
            p["identifier"] = f"{REPOSITORY}/releases/download/v{new}/openclaw-mcp-{new}.mcpb"
            p["version"] = new
        else:
            p["version"] = new
    write_json(SERVER_JSON, server)
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    (ROOT / "Dockerfile").write_text(re.sub(r'(org\.opencontainers\.image\.version=)"[^"]+"', rf'\1"{new}"', dockerfile), encoding="utf-8")
    log(f"{old} -> {new}; check with `python3 scripts/packaging.py check-versions`")


# --- archives for GitHub Releases -----------------------------------------------------------------

def cmd_archives(args: argparse.Namespace) -> None:
    dist = Path(args.dist)
    version = cargo_version()
    have = built(dist)
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", "0"))
    extras = [ROOT / "README.md", ROOT / "LICENSE"]
    for name in ARCHIVES:
        if name not in have:
            continue
        triple, exe = PLATFORMS[name]["triple"], PLATFORMS[name]["exe"]
        stem = f"openclaw-mcp-{version}-{triple}"
        if name.startswith("win32"):
            out = dist / f"{stem}.zip"
            with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
                for path, mode in [(have[name], 0o755)] + [(e, 0o644) for e in extras]:
                    info = zipfile.ZipInfo(f"{stem}/{path.name}", time.gmtime(max(epoch, 315532800))[:6])
                    info.external_attr = (0o100000 | mode) << 16
                    info.compress_type = zipfile.ZIP_DEFLATED
                    z.writestr(info, path.read_bytes())
        else:
            out = dist / f"{stem}.tar.gz"
            with open(out, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9, mtime=epoch) as gz:
                with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as t:
                    for path, mode in [(have[name], 0o755)] + [(e, 0o644) for e in extras]:
                        info = tarfile.TarInfo(f"{stem}/{path.name}")
                        info.size, info.mode, info.mtime = path.stat().st_size, mode, epoch
                        with open(path, "rb") as f:
                            t.addfile(info, f)
        log(f"{out.name}: {out.stat().st_size} bytes")


# --- npm -----------------------------------------------------------------------------------------

def cmd_npm_stage(args: argparse.Namespace) -> None:
    """Writes one directory per npm package into --out, ready for `npm pack`: the launcher
    (packaging/npm/openclaw-mcp-rs) and one platform package per binary in dist/bin."""
    dist, out = Path(args.dist), Path(args.out)
    version = cargo_version()
    have = built(dist)
    if out.exists():
        shutil.rmtree(out)
    main = out / NPM_NAME
    shutil.copytree(NPM_MAIN, main)
    shutil.copy(ROOT / "LICENSE", main / "LICENSE")
    pkg = read_json(main / "package.json")
    if pkg["version"] != version:
        die(f"{NPM_MAIN}/package.json has {pkg['version']}, Cargo.toml {version}")
    want = {f"{NPM_NAME}-{p}": f"npm:{NPM_NAME}@{version}-{p}" for p in NPM_PLATFORMS}
    if pkg.get("optionalDependencies") != want:
        die(f"{NPM_MAIN}/package.json optionalDependencies must be {want}")
    for key in ("scripts", "gypfile"):
        if key in pkg:
            die(f"{NPM_MAIN}/package.json must have no {key!r}: nothing runs at install time")
    for name in NPM_PLATFORMS:
        if name not in have:
            continue
        p = PLATFORMS[name]
        d = out / f"{NPM_NAME}-{name}"
        (d / "bin").mkdir(parents=True)
        shutil.copy2(have[name], d / "bin" / p["exe"])
        os.chmod(d / "bin" / p["exe"], 0o755)
        shutil.copy(ROOT / "LICENSE", d / "LICENSE")
        (d / "README.md").write_text(
            f"# {NPM_NAME} {version}-{name}\n\nThe `openclaw-mcp` binary for {p['what']}, installed by "
            f"[`{NPM_NAME}`](https://www.npmjs.com/package/{NPM_NAME}) as an optional dependency. "
            f"Install `{NPM_NAME}` (or run `npx -y {NPM_NAME}`), not this package.\n", encoding="utf-8")
        write_json(d / "package.json", {
            "name": NPM_NAME,
            "version": f"{version}-{name}",
            "description": f"The openclaw-mcp binary for {p['what']}; installed by {NPM_NAME}",
            "repository": pkg["repository"],
            "homepage": pkg["homepage"],
            "license": pkg["license"],
            "os": [p["os"]],
            "cpu": p["cpu"],
            "files": [f"bin/{p['exe']}"],
            "preferUnplugged": True,
        })
    log(f"staged {NPM_NAME} and {len([n for n in NPM_PLATFORMS if n in have])} platform package(s) in {out}")


def tarball_manifest(tgz: Path) -> dict:
    with tarfile.open(tgz) as t:
        return json.load(t.extractfile("package/package.json"))


def cmd_npm_registry(args: argparse.Namespace) -> None:
    """A read-only npm registry on 127.0.0.1 serving the tarballs in --dir (packuments with
    dist-tags, shasum and integrity, as registry.npmjs.org answers), so that npm and npx resolve,
    fetch and install them exactly as they would from npm, without the network. Logs every
    request to --log, so the caller can tell which tarballs npm fetched."""
    tarballs = sorted(Path(args.dir).glob("*.tgz"))
    packuments: dict[str, dict] = {}
    files: dict[str, Path] = {}
    for tgz in tarballs:
        pj = tarball_manifest(tgz)
        data = tgz.read_bytes()
        doc = packuments.setdefault(pj["name"], {"_id": pj["name"], "name": pj["name"], "dist-tags": {}, "versions": {}, "time": {}})
        files[tgz.name] = tgz
        pj = dict(pj)
        pj["_id"] = f"{pj['name']}@{pj['version']}"
        pj["dist"] = {
            "tarball": f"http://127.0.0.1:{{port}}/-/tarballs/{urllib.parse.quote(tgz.name)}",
            "shasum": hashlib.sha1(data).hexdigest(),
            "integrity": "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode(),
        }
        doc["versions"][pj["version"]] = pj
        if pj.get("os"):  # a platform package: tagged with its platform, never latest
            doc["dist-tags"][pj["version"].rsplit("-", 2)[-2] + "-" + pj["version"].rsplit("-", 1)[-1]] = pj["version"]
        else:
            doc["dist-tags"]["latest"] = pj["version"]
    logf = open(args.log, "a", encoding="utf-8")

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, fmt: str, *a: object) -> None:
            logf.write("%s\n" % (fmt % a))
            logf.flush()

        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
            port = self.server.server_address[1]
            if path.startswith("/-/tarballs/") and path[len("/-/tarballs/"):] in files:
                body = files[path[len("/-/tarballs/"):]].read_bytes()
                ctype = "application/octet-stream"
            elif path.lstrip("/") in packuments:
                body = json.dumps(packuments[path.lstrip("/")]).replace("{port}", str(port)).encode()
                ctype = "application/json"
            else:
                body, ctype = b'{"error":"Not found"}', "application/json"
                self.send_response(404)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    Path(args.port_file).write_text(str(server.server_address[1]), encoding="utf-8")
    server.serve_forever()


# --- OCI image -----------------------------------------------------------------------------------

def _tar_layer(binary: Path, epoch: int) -> bytes:
    """The image's only layer: the static binary, a passwd/group naming the non-root user 65532,
    its home, /tmp and the /data volume owned by it. No shell, no package manager, no libc."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        def add(name: str, kind: bytes, mode: int, uid: int = 0, data: bytes | None = None) -> None:
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.uid, info.gid, info.mtime = kind, mode, uid, uid, epoch
            info.uname = info.gname = ""
            if data is not None:
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
            else:
                t.addfile(info)
        add("etc", tarfile.DIRTYPE, 0o755)
        add("etc/passwd", tarfile.REGTYPE, 0o644, data=b"root:x:0:0:root:/root:/sbin/nologin\n"
            b"nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")
        add("etc/group", tarfile.REGTYPE, 0o644, data=b"root:x:0:\nnonroot:x:65532:\n")
        add("home", tarfile.DIRTYPE, 0o755)
        add("home/nonroot", tarfile.DIRTYPE, 0o700, uid=65532)
        add("tmp", tarfile.DIRTYPE, 0o1777)
        add("data", tarfile.DIRTYPE, 0o755, uid=65532)
        add("usr", tarfile.DIRTYPE, 0o755)
        add("usr/local", tarfile.DIRTYPE, 0o755)
        add("usr/local/bin", tarfile.DIRTYPE, 0o755)
        add("usr/local/bin/openclaw-mcp", tarfile.REGTYPE, 0o755, data=binary.read_bytes())
    return buf.getvalue()


def cmd_oci(args: argparse.Namespace) -> None:
    """Writes an OCI image layout into --out: one image per Linux binary in dist/bin (amd64,
    arm64) and an image index holding both, tagged with the version (and each image with
    <version>-<arch>). The same settings as the Dockerfile's image: user 65532, /data volume,
    port 3000, HTTP transport, the healthcheck, and the MCP Registry's label."""
    dist, out = Path(args.dist), Path(args.out)
    version = cargo_version()
    epoch = int(args.epoch)
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
    have = built(dist)
    arches = [n for n in ("linux-x64", "linux-arm64") if n in have]
    if not arches:
        die("no Linux binary in dist/bin: build linux-x64 or linux-arm64 first")
    if out.exists():
        shutil.rmtree(out)
    blobs = out / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def blob(data: bytes, media_type: str) -> dict:
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}

    def canonical(value: dict) -> bytes:
        return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()

    labels = {
        "io.modelcontextprotocol.server.name": REGISTRY_NAME,
        "org.opencontainers.image.title": "openclaw-mcp",
        "org.opencontainers.image.description": "MCP server that lets Claude talk to OpenClaw gateways (stdio, Streamable HTTP, OAuth 2.1)",
        "org.opencontainers.image.version": version,
        "org.opencontainers.image.source": REPOSITORY,
        "org.opencontainers.image.url": REPOSITORY,
        "org.opencontainers.image.licenses": "MIT",
        "org.opencontainers.image.created": created,
    }
    if args.revision:
        labels["org.opencontainers.image.revision"] = args.revision
    index_entries, images = [], []
    for name in arches:
        platform = PLATFORMS[name]["oci"]
        layer = _tar_layer(have[name], epoch)
        gz = io.BytesIO()
        with gzip.GzipFile(fileobj=gz, mode="wb", compresslevel=9, mtime=0) as g:
            g.write(layer)
        layer_desc = blob(gz.getvalue(), "application/vnd.oci.image.layer.v1.tar+gzip")
        config = {
            "created": created,
            **platform,
            "config": {
                "User": "65532:65532",
                "ExposedPorts": {"3000/tcp": {}},
                "Env": [
                    "PATH=/usr/local/bin:/usr/bin:/bin",
                    "HOME=/home/nonroot",
                    "OPENCLAW_URL=http://openclaw:18789",
                    "HOST=0.0.0.0",
                    "PORT=3000",
                    "OPENCLAW_MCP_DATA_DIR=/data",
                ],
                "Entrypoint": ["/usr/local/bin/openclaw-mcp"],
                "Cmd": ["--transport", "http"],
                "Volumes": {"/data": {}},
                "WorkingDir": "/",
                "Labels": labels,
                # Docker reads this from the image config (OCI leaves it to the runtime).
                "Healthcheck": {
                    "Test": ["CMD", "/usr/local/bin/openclaw-mcp", "healthcheck"],
                    "Interval": 30_000_000_000, "Timeout": 5_000_000_000,
                    "StartPeriod": 5_000_000_000, "Retries": 3,
                },
            },
            "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]},
            "history": [{"created": created, "created_by": f"scripts/package.sh: openclaw-mcp {version} ({PLATFORMS[name]['triple']})"}],
        }
        config_desc = blob(canonical(config), "application/vnd.oci.image.config.v1+json")
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": config_desc,
            "layers": [layer_desc],
            "annotations": {"org.opencontainers.image.created": created, "org.opencontainers.image.version": version},
        }
        manifest_desc = blob(canonical(manifest), "application/vnd.oci.image.manifest.v1+json")
        images.append({**manifest_desc, "platform": platform})
        index_entries.append({**manifest_desc, "platform": platform,
                              "annotations": {"org.opencontainers.image.ref.name": f"{version}-{platform['architecture']}"}})
        log(f"image linux/{platform['architecture']}: layer {layer_desc['size']} bytes compressed ({len(layer)} unpacked), manifest {manifest_desc['digest'][:19]}…")
    image_index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": images,
        "annotations": {"org.opencontainers.image.version": version, "org.opencontainers.image.source": REPOSITORY,
                        "org.opencontainers.image.created": created, "io.modelcontextprotocol.server.name": REGISTRY_NAME},
    }
    index_desc = blob(canonical(image_index), "application/vnd.oci.image.index.v1+json")
    layout_index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{**index_desc, "annotations": {"org.opencontainers.image.ref.name": version}}] + index_entries,
    }
    write_json(out / "index.json", layout_index)
    write_json(out / "oci-layout", {"imageLayoutVersion": "1.0.0"})
    log(f"OCI layout in {out}: {version} = index of {', '.join('linux/' + PLATFORMS[n]['oci']['architecture'] for n in arches)}")


# --- MCP Registry --------------------------------------------------------------------------------

def cmd_server_json(args: argparse.Namespace) -> None:
    """dist/server.json: the repository's server.json with the .mcpb's SHA-256 filled in (the
    registry requires it for an mcpb package, and it is only known once the bundle is built)."""
    dist = Path(args.dist)
    version = cargo_version()
    server = read_json(SERVER_JSON)
    bundle = dist / f"openclaw-mcp-{version}.mcpb"
    for p in server["packages"]:
        if p["registryType"] == "mcpb":
            if not bundle.is_file():
                die(f"{bundle} is missing: dist/server.json needs its SHA-256")
            p["fileSha256"] = sha256_file(bundle)
    write_json(dist / "server.json", server)
    log(f"dist/server.json: mcpb fileSha256 {sha256_file(bundle) if bundle.is_file() else '-'}")


def cmd_check_server_json(args: argparse.Namespace) -> None:
    """What the schema cannot say: one registry name everywhere, an ownership proof for each
    package kind, the environment variables the bridge really reads, and secrets marked."""
    problems: list[str] = []
    server = read_json(SERVER_JSON)
    if server.get("$schema") != SERVER_SCHEMA_URL:
        problems.append(f"server.json $schema must be {SERVER_SCHEMA_URL}")
    if server.get("name") != REGISTRY_NAME:
        problems.append(f"server.json name {server.get('name')} != {REGISTRY_NAME}")
    pkg = read_json(NPM_MAIN / "package.json")
    if pkg.get("mcpName") != REGISTRY_NAME:
        problems.append(f"npm mcpName {pkg.get('mcpName')} != {REGISTRY_NAME}")
    for readme in (ROOT / "README.md", NPM_MAIN / "README.md"):
        if f"mcp-name: {REGISTRY_NAME}" not in readme.read_text(encoding="utf-8"):
            problems.append(f"{readme.relative_to(ROOT)} has no visible `mcp-name: {REGISTRY_NAME}` line")
        elif re.search(r"<!--[^>]*mcp-name:", readme.read_text(encoding="utf-8")):
            problems.append(f"{readme.relative_to(ROOT)}: the mcp-name line is inside a comment (crates.io strips it)")
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    if f'io.modelcontextprotocol.server.name="{REGISTRY_NAME}"' not in dockerfile:
        problems.append("Dockerfile lacks LABEL io.modelcontextprotocol.server.name")
    docs = (ROOT / "docs/configuration.md").read_text(encoding="utf-8")
    kinds = set()
    for p in server.get("packages", []):
        kinds.add(p["registryType"])
        for var in p.get("environmentVariables", []):
            if f"`{var['name']}`" not in docs:
                problems.append(f"{p['registryType']}: {var['name']} is not documented in docs/configuration.md")
            secret = var["name"].endswith(("TOKEN", "SECRET", "PASSWORD", "TOKENS")) or var["name"] == "OPENCLAW_INSTANCES"
            if secret and not var.get("isSecret"):
                problems.append(f"{p['registryType']}: {var['name']} must be isSecret")
        if p["registryType"] == "npm" and p["identifier"] != NPM_NAME:
            problems.append(f"npm identifier {p['identifier']} != {NPM_NAME}")
        if p["registryType"] == "oci" and not p["identifier"].startswith(IMAGE + ":"):
            problems.append(f"oci identifier {p['identifier']} is not {IMAGE}:<version>")
        if p["registryType"] == "mcpb" and "mcp" not in p["identifier"]:
            problems.append("the mcpb URL must contain 'mcp' (the registry's ownership rule)")
    for kind in ("npm", "oci", "mcpb", "cargo"):
        if kind not in kinds:
            problems.append(f"server.json lists no {kind} package")
    if args.dist:
        index = Path(args.dist) / "oci" / "index.json"
        if index.is_file():
            for m in read_json(index)["manifests"]:
                if m["mediaType"].endswith("manifest.v1+json"):
                    man = read_json(Path(args.dist) / "oci/blobs/sha256" / m["digest"].split(":")[1])
                    cfg = read_json(Path(args.dist) / "oci/blobs/sha256" / man["config"]["digest"].split(":")[1])
                    if cfg["config"]["Labels"].get("io.modelcontextprotocol.server.name") != REGISTRY_NAME:
                        problems.append(f"OCI image {m['digest'][:19]} lacks the registry label")
        for tgz in (Path(args.dist) / "npm").glob(f"{NPM_NAME}-[0-9]*.tgz"):
            pj = tarball_manifest(tgz)
            if not pj.get("os") and pj.get("mcpName") != REGISTRY_NAME:
                problems.append(f"{tgz.name}: mcpName {pj.get('mcpName')}")
        ds = Path(args.dist) / "server.json"
        if ds.is_file():
            for p in read_json(ds)["packages"]:
                if p["registryType"] == "mcpb":
                    bundle = Path(args.dist) / p["identifier"].rsplit("/", 1)[1]
                    if not bundle.is_file() or p.get("fileSha256") != sha256_file(bundle):
                        problems.append(f"dist/server.json: fileSha256 does not match {bundle.name}")
    for p in problems:
        print(f"  FAIL {p}")
    if problems:
        die(f"{len(problems)} problem(s) in the MCP Registry metadata")
    print(f"check-server-json: {REGISTRY_NAME} in server.json, npm mcpName, README, Dockerfile"
          f"{' and the built artifacts' if args.dist else ''}; packages {sorted(kinds)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("version")
    p = sub.add_parser("check-versions")
    p.add_argument("--dist")
    p = sub.add_parser("set-version")
    p.add_argument("version")
    p = sub.add_parser("archives")
    p.add_argument("--dist", required=True)
    p = sub.add_parser("npm-stage")
    p.add_argument("--dist", required=True)
    p.add_argument("--out", required=True)
    p = sub.add_parser("oci")
    p.add_argument("--dist", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--revision", default="")
    p.add_argument("--epoch", default=os.environ.get("SOURCE_DATE_EPOCH", "0"))
    p = sub.add_parser("server-json")
    p.add_argument("--dist", required=True)
    p = sub.add_parser("check-server-json")
    p.add_argument("--dist")
    p = sub.add_parser("npm-registry")
    p.add_argument("--dir", required=True)
    p.add_argument("--port-file", required=True)
    p.add_argument("--log", required=True)
    args = parser.parse_args()
    if args.cmd == "version":
        print(cargo_version())
        return
    {
        "check-versions": cmd_check_versions, "set-version": cmd_set_version, "archives": cmd_archives,
        "npm-stage": cmd_npm_stage, "oci": cmd_oci, "server-json": cmd_server_json,
        "check-server-json": cmd_check_server_json, "npm-registry": cmd_npm_registry,
    }[args.cmd](args)


if __name__ == "__main__":
    main()

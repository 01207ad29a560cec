#!/usr/bin/env python3
"""Says what a release binary is, from its headers, and fails if it is not what it should be.

    python3 scripts/binary_check.py KIND FILE [KIND FILE ...]

KIND is one of linux-x64, linux-arm64 (static ELF), darwin-x64, darwin-arm64 (thin Mach-O),
darwin-universal (a fat Mach-O with exactly those two slices), win32-x64 (PE32+). Nothing but the
standard library: the checks read the file formats themselves, so that they run on any machine
that builds the packages, and so that each rule is written down here:

* ELF (Linux): class, byte order, machine, type; no PT_INTERP (no dynamic loader) and no DT_NEEDED
  (no shared library): the binary runs on any Linux kernel of its architecture, whatever its libc.
* Mach-O (macOS): CPU type of each slice, MH_EXECUTE, LC_BUILD_VERSION platform macOS with the
  minimum OS (minos) given by --macos-min (default 11.0), every LC_LOAD_DYLIB a system library
  (/usr/lib/ or /System/Library/), and a code signature that is valid: the SuperBlob and each
  CodeDirectory parse, the CodeDirectory covers the whole file up to the signature (codeLimit), and
  every page hash and every special-slot hash matches the bytes. Apple silicon kills an arm64
  binary whose signature is missing or does not match its pages; an ad-hoc signature (no
  certificate, flags "adhoc") is enough for it to run.
* PE (Windows): PE32+ for x86-64, console subsystem, and every imported DLL (import and
  delay-import tables) one that ships with Windows 10 and later (the Universal CRT's api-ms-win-*
  included): no MinGW runtime DLL, no Visual C++ redistributable.

Prints one block per file and exits 1 if any rule fails.
"""

import hashlib
import struct
import sys

# --- ELF ---------------------------------------------------------------------------------------------

ELF_MACHINES = {62: "x86-64", 183: "aarch64"}
EXPECT_ELF = {"linux-x64": 62, "linux-arm64": 183}


def check_elf(data, kind, out):
    if data[:4] != b"\x7fELF":
        return out.fail("not an ELF file")
    if data[4] != 2 or data[5] != 1:
        return out.fail("not a 64-bit little-endian ELF (class %d, data %d)" % (data[4], data[5]))
    e_type, e_machine = struct.unpack_from("<HH", data, 16)
    e_phoff, = struct.unpack_from("<Q", data, 32)
    e_phentsize, e_phnum = struct.unpack_from("<HH", data, 54)
    out.info("format", "ELF64 little-endian, %s, %s" % (
        {2: "ET_EXEC (static)", 3: "ET_DYN (static-pie when it has no interpreter)"}.get(e_type, "type %d" % e_type),
        ELF_MACHINES.get(e_machine, "machine %d" % e_machine)))
    if e_machine != EXPECT_ELF[kind]:
        out.fail("machine is %s, expected %s" % (ELF_MACHINES.get(e_machine, e_machine), ELF_MACHINES[EXPECT_ELF[kind]]))
    loads, interp, dynamic = [], None, None
    for i in range(e_phnum):
        p_type, _flags, p_offset, p_vaddr, _paddr, p_filesz = struct.unpack_from("<IIQQQQ", data, e_phoff + i * e_phentsize)
        if p_type == 1:
            loads.append((p_vaddr, p_offset, p_filesz))
        elif p_type == 3:
            interp = data[p_offset:p_offset + p_filesz].rstrip(b"\0").decode()
        elif p_type == 2:
            dynamic = (p_offset, p_filesz)

    def vaddr_to_offset(addr):
        for vaddr, offset, size in loads:
            if vaddr <= addr < vaddr + size:
                return offset + addr - vaddr
        return None

    needed = []
    if dynamic:
        entries, strtab = [], None
        for off in range(dynamic[0], dynamic[0] + dynamic[1], 16):
            tag, val = struct.unpack_from("<qQ", data, off)
            if tag == 0:
                break
            entries.append((tag, val))
            if tag == 5:  # DT_STRTAB
                strtab = vaddr_to_offset(val)
        for tag, val in entries:
            if tag == 1 and strtab is not None:  # DT_NEEDED
                end = data.index(b"\0", strtab + val)
                needed.append(data[strtab + val:end].decode())
    out.info("interpreter", interp or "none")
    out.info("shared libraries", ", ".join(needed) or "none (statically linked)")
    if interp:
        out.fail("has a dynamic loader (%s): not static" % interp)
    if needed:
        out.fail("needs shared libraries: %s" % ", ".join(needed))


# --- Mach-O ------------------------------------------------------------------------------------------

CPU_X86_64, CPU_ARM64 = 0x01000007, 0x0100000C
CPU_NAMES = {CPU_X86_64: "x86_64", CPU_ARM64: "arm64"}
LC_LOAD_DYLIB, LC_LOAD_WEAK_DYLIB, LC_REEXPORT_DYLIB, LC_LOAD_UPWARD_DYLIB = 0xC, 0x80000018, 0x8000001F, 0x80000023
LC_SEGMENT_64, LC_CODE_SIGNATURE, LC_BUILD_VERSION, LC_VERSION_MIN_MACOSX = 0x19, 0x1D, 0x32, 0x24
CS_SUPERBLOB, CS_CODEDIRECTORY = 0xFADE0CC0, 0xFADE0C02
CS_HASHES = {1: ("sha1", 20), 2: ("sha256", 32), 3: ("sha256", 20), 4: ("sha384", 48)}
CS_FLAGS = {0x2: "adhoc", 0x10000: "runtime", 0x20000: "linker-signed"}
SYSTEM_DYLIB_PREFIXES = ("/usr/lib/", "/System/Library/")


def version(v):
    return "%d.%d.%d" % (v >> 16, (v >> 8) & 0xFF, v & 0xFF)


def check_code_signature(sl, dataoff, datasize, text_seg, out, name):
    """Verifies an embedded code signature the way the kernel checks pages: every CodeDirectory's
    page hashes over [0, codeLimit) and its special slots against the SuperBlob's other blobs."""
    blob = sl[dataoff:dataoff + datasize]
    if len(blob) < 12:
        return out.fail("%s: code signature outside the file" % name)
    magic, length, count = struct.unpack_from(">III", blob, 0)
    if magic != CS_SUPERBLOB:
        return out.fail("%s: code signature is not an embedded SuperBlob (magic %#x)" % (name, magic))
    if length > datasize:
        return out.fail("%s: SuperBlob length %d exceeds LC_CODE_SIGNATURE size %d" % (name, length, datasize))
    slots = {}
    for i in range(count):
        slot_type, offset = struct.unpack_from(">II", blob, 12 + 8 * i)
        b_magic, b_len = struct.unpack_from(">II", blob, offset)
        slots[slot_type] = (b_magic, blob[offset:offset + b_len])
    cds = [(t, b) for t, (m, b) in slots.items() if m == CS_CODEDIRECTORY]
    if not cds:
        return out.fail("%s: no CodeDirectory in the signature" % name)
    for slot_type, cd in sorted(cds):
        (_m, _l, cd_version, flags, hash_offset, ident_offset, n_special, n_code, code_limit,
         hash_size, hash_type, _platform, page_log2) = struct.unpack_from(">IIIIIIIIIBBBB", cd, 0)
        ident = cd[ident_offset:cd.index(b"\0", ident_offset)].decode()
        if cd_version >= 0x20300:
            code_limit64, = struct.unpack_from(">Q", cd, 0x38)
            if code_limit64:
                code_limit = code_limit64
        exec_seg = None
        if cd_version >= 0x20400:
            exec_seg = struct.unpack_from(">QQQ", cd, 0x40)
        if hash_type not in CS_HASHES:
            out.fail("%s: unknown hash type %d" % (name, hash_type))
            continue
        algo, size = CS_HASHES[hash_type]
        if size != hash_size:
            out.fail("%s: hash size %d does not match hash type %s" % (name, hash_size, algo))
            continue
        page = 1 << page_log2 if page_log2 else code_limit
        flag_names = [n for bit, n in CS_FLAGS.items() if flags & bit] or ["none"]
        out.info("%s signature" % name, "CodeDirectory v%#x, identifier %r, %s, flags %s, %d pages of %d bytes, codeLimit %d, %d special slots" % (
            cd_version, ident, algo, "|".join(flag_names), n_code, page, code_limit, n_special))
        if code_limit != dataoff:
            out.fail("%s: the signature covers %d bytes, but the code runs to %d" % (name, code_limit, dataoff))
        if n_code != (code_limit + page - 1) // page:
            out.fail("%s: %d code slots for %d bytes in pages of %d" % (name, n_code, code_limit, page))
        bad = 0
        for i in range(n_code):
            want = cd[hash_offset + i * hash_size:hash_offset + (i + 1) * hash_size]
            got = hashlib.new(algo, sl[i * page:min((i + 1) * page, code_limit)]).digest()[:hash_size]
            if want != got:
                bad += 1
        if bad:
            out.fail("%s: %d of %d page hashes do not match the file: the signature is invalid" % (name, bad, n_code))
        for k in range(1, n_special + 1):
            want = cd[hash_offset - k * hash_size:hash_offset - (k - 1) * hash_size]
            if k in slots:
                got = hashlib.new(algo, slots[k][1]).digest()[:hash_size]
                if want != got:
                    out.fail("%s: special slot -%d does not match blob %d" % (name, k, k))
            elif want != bytes(hash_size):
                out.fail("%s: special slot -%d has a hash but the signature has no blob %d" % (name, k, k))
        if exec_seg and text_seg and (exec_seg[0], exec_seg[1]) != text_seg:
            out.fail("%s: execSeg %s does not describe __TEXT %s" % (name, exec_seg[:2], text_seg))
        if not flags & 0x2 and 0x10000 not in slots:
            out.fail("%s: neither ad-hoc nor carrying a CMS signature blob" % name)
    if not out.failed_since_mark():
        out.info("%s signature check" % name, "valid: every page hash and special slot matches")


def check_macho_slice(sl, expect_cpu, macos_min, out):
    name = CPU_NAMES.get(expect_cpu, hex(expect_cpu))
    magic, cputype, _sub, filetype, ncmds, _sizeofcmds, _flags = struct.unpack_from("<IiiIIII", sl, 0)
    if magic != 0xFEEDFACF:
        return out.fail("%s: not a 64-bit Mach-O (magic %#x)" % (name, magic))
    cputype &= 0xFFFFFFFF
    if cputype != expect_cpu:
        out.fail("slice is %s, expected %s" % (CPU_NAMES.get(cputype, hex(cputype)), name))
    if filetype != 2:
        out.fail("%s: file type %d, expected MH_EXECUTE" % (name, filetype))
    off, dylibs, minos, sdk, sig, text_seg = 32, [], None, None, None, None
    for _ in range(ncmds):
        cmd, cmdsize = struct.unpack_from("<II", sl, off)
        if cmd in (LC_LOAD_DYLIB, LC_LOAD_WEAK_DYLIB, LC_REEXPORT_DYLIB, LC_LOAD_UPWARD_DYLIB):
            name_off, = struct.unpack_from("<I", sl, off + 8)
            dylibs.append(sl[off + name_off:off + cmdsize].split(b"\0")[0].decode())
        elif cmd == LC_BUILD_VERSION:
            platform, minos, sdk = struct.unpack_from("<III", sl, off + 8)
            if platform != 1:
                out.fail("%s: build platform %d, expected 1 (macOS)" % (name, platform))
        elif cmd == LC_VERSION_MIN_MACOSX:
            minos, sdk = struct.unpack_from("<II", sl, off + 8)
        elif cmd == LC_CODE_SIGNATURE:
            sig = struct.unpack_from("<II", sl, off + 8)
        elif cmd == LC_SEGMENT_64:
            segname = sl[off + 8:off + 24].rstrip(b"\0").decode()
            if segname == "__TEXT":
                fileoff, filesize = struct.unpack_from("<QQ", sl, off + 40)
                text_seg = (fileoff, filesize)
        off += cmdsize
    out.info("%s slice" % name, "Mach-O 64-bit MH_EXECUTE, %d bytes" % len(sl))
    out.info("%s minimum macOS" % name, "%s (SDK %s)" % (version(minos), version(sdk)) if minos is not None else "none")
    out.info("%s libraries" % name, ", ".join(dylibs) or "none")
    want = tuple(int(x) for x in macos_min.split("."))
    want_v = (want[0] << 16) | ((want[1] if len(want) > 1 else 0) << 8)
    if minos is None:
        out.fail("%s: no LC_BUILD_VERSION or LC_VERSION_MIN_MACOSX" % name)
    elif minos != want_v:
        out.fail("%s: minimum macOS is %s, expected %s" % (name, version(minos), version(want_v)))
    foreign = [d for d in dylibs if not d.startswith(SYSTEM_DYLIB_PREFIXES)]
    if foreign:
        out.fail("%s: links libraries that are not part of macOS: %s" % (name, ", ".join(foreign)))
    if not sig:
        return out.fail("%s: no LC_CODE_SIGNATURE: Apple silicon refuses to run an unsigned binary" % name)
    out.mark()
    check_code_signature(sl, sig[0], sig[1], text_seg, out, name)


def check_macho(data, kind, macos_min, out):
    magic, = struct.unpack_from(">I", data, 0)
    if magic == 0xCAFEBABE:
        nfat, = struct.unpack_from(">I", data, 4)
        slices = []
        for i in range(nfat):
            cputype, _sub, offset, size, align = struct.unpack_from(">iiIII", data, 8 + 20 * i)
            slices.append((cputype & 0xFFFFFFFF, offset, size, align))
        out.info("format", "universal (fat) Mach-O, %d slices: %s" % (
            nfat, ", ".join("%s at %d (%d bytes, align 2^%d)" % (CPU_NAMES.get(c, hex(c)), o, s, a) for c, o, s, a in slices)))
        if kind != "darwin-universal":
            return out.fail("a universal binary where a thin %s one was expected" % kind)
        cpus = sorted(c for c, _o, _s, _a in slices)
        if cpus != sorted([CPU_X86_64, CPU_ARM64]):
            out.fail("slices are %s, expected x86_64 and arm64" % [CPU_NAMES.get(c, hex(c)) for c in cpus])
        for cputype, offset, size, _align in slices:
            if offset + size > len(data):
                out.fail("slice %s runs past the end of the file" % CPU_NAMES.get(cputype, hex(cputype)))
                continue
            check_macho_slice(data[offset:offset + size], cputype, macos_min, out)
        return
    if magic == 0xCFFAEDFE:
        out.info("format", "thin Mach-O 64-bit")
        expect = {"darwin-x64": CPU_X86_64, "darwin-arm64": CPU_ARM64}.get(kind)
        if expect is None:
            return out.fail("a thin binary where a universal one was expected")
        return check_macho_slice(data, expect, macos_min, out)
    out.fail("not a Mach-O file (magic %#x)" % magic)


# --- PE ----------------------------------------------------------------------------------------------

# DLLs that every Windows 10/11 (and Server 2016+) has in System32. The Universal CRT's API sets
# (api-ms-win-crt-*) are part of Windows 10 too.
WINDOWS_SYSTEM_DLLS = {
    "kernel32.dll", "kernelbase.dll", "ntdll.dll", "advapi32.dll", "bcrypt.dll", "bcryptprimitives.dll",
    "ws2_32.dll", "userenv.dll", "secur32.dll", "crypt32.dll", "ncrypt.dll", "ole32.dll", "oleaut32.dll",
    "shell32.dll", "user32.dll", "gdi32.dll", "iphlpapi.dll", "ucrtbase.dll", "msvcrt.dll", "dbghelp.dll",
    "synchronization.dll", "powrprof.dll", "shlwapi.dll", "rpcrt4.dll", "mswsock.dll", "dnsapi.dll",
    "version.dll", "winhttp.dll", "netapi32.dll",
}


def check_pe(data, kind, out):
    if data[:2] != b"MZ":
        return out.fail("not a PE file (no MZ)")
    pe, = struct.unpack_from("<I", data, 0x3C)
    if data[pe:pe + 4] != b"PE\0\0":
        return out.fail("no PE signature")
    machine, nsections, _ts, _sym, _nsym, opt_size, characteristics = struct.unpack_from("<HHIIIHH", data, pe + 4)
    opt = pe + 24
    opt_magic, = struct.unpack_from("<H", data, opt)
    if opt_magic != 0x20B:
        out.fail("optional header magic %#x, expected PE32+ (0x20b)" % opt_magic)
    os_major, os_minor = struct.unpack_from("<HH", data, opt + 40)
    sub_major, sub_minor = struct.unpack_from("<HH", data, opt + 48)
    subsystem, = struct.unpack_from("<H", data, opt + 68)
    n_dirs, = struct.unpack_from("<I", data, opt + 108)
    dirs = [struct.unpack_from("<II", data, opt + 112 + 8 * i) for i in range(n_dirs)]
    sections = []
    sec = opt + opt_size
    for i in range(nsections):
        _name, vsize, vaddr, rawsize, rawptr = struct.unpack_from("<8sIIII", data, sec + 40 * i)
        sections.append((vaddr, max(vsize, rawsize), rawptr))

    def rva(r):
        for vaddr, size, rawptr in sections:
            if vaddr <= r < vaddr + size:
                return rawptr + r - vaddr
        raise ValueError("RVA %#x in no section" % r)

    def cstr(r):
        o = rva(r)
        return data[o:data.index(b"\0", o)].decode()

    out.info("format", "PE32+ %s, %s subsystem, %s" % (
        {0x8664: "x86-64", 0xAA64: "arm64", 0x14C: "i386"}.get(machine, hex(machine)),
        {2: "GUI", 3: "console"}.get(subsystem, str(subsystem)),
        "executable" if characteristics & 0x2 and not characteristics & 0x2000 else "not an executable image"))
    out.info("minimum Windows", "OS version %d.%d, subsystem version %d.%d" % (os_major, os_minor, sub_major, sub_minor))
    if machine != 0x8664:
        out.fail("machine %#x, expected x86-64 (0x8664)" % machine)
    if subsystem != 3:
        out.fail("subsystem %d, expected console (3): stdio would not be inherited" % subsystem)
    if not characteristics & 0x2 or characteristics & 0x2000:
        out.fail("not an executable image")
    dlls = []
    if n_dirs > 1 and dirs[1][0]:
        o = rva(dirs[1][0])
        while True:
            _ilt, _ts2, _fwd, name_rva, _iat = struct.unpack_from("<IIIII", data, o)
            if not name_rva:
                break
            dlls.append(cstr(name_rva))
            o += 20
    delay = []
    if n_dirs > 13 and dirs[13][0]:
        o = rva(dirs[13][0])
        while True:
            _attrs, name_rva = struct.unpack_from("<II", data, o)
            if not name_rva:
                break
            delay.append(cstr(name_rva))
            o += 32
    out.info("imported DLLs", ", ".join(dlls) or "none")
    if delay:
        out.info("delay-loaded DLLs", ", ".join(delay))
    foreign = [d for d in dlls + delay
               if d.lower() not in WINDOWS_SYSTEM_DLLS and not d.lower().startswith(("api-ms-win-", "ext-ms-win-"))]
    if foreign:
        out.fail("imports DLLs that are not part of Windows: %s" % ", ".join(foreign))


# --- driver ------------------------------------------------------------------------------------------

class Report:
    def __init__(self):
        self.failures = []
        self._mark = 0

    def info(self, what, text):
        print("  %-26s %s" % (what + ":", text))

    def fail(self, text):
        self.failures.append(text)
        print("  FAIL %s" % text)

    def mark(self):
        self._mark = len(self.failures)

    def failed_since_mark(self):
        return len(self.failures) > self._mark


def main(argv):
    macos_min = "11.0"
    if argv[:1] == ["--macos-min"]:
        macos_min, argv = argv[1], argv[2:]
    if not argv or len(argv) % 2:
        sys.exit(__doc__)
    out = Report()
    for kind, path in zip(argv[0::2], argv[1::2]):
        with open(path, "rb") as f:
            data = f.read()
        print("%s (%s, %d bytes, sha256 %s)" % (path, kind, len(data), hashlib.sha256(data).hexdigest()))
        before = len(out.failures)
        if kind in EXPECT_ELF:
            check_elf(data, kind, out)
        elif kind.startswith("darwin-"):
            check_macho(data, kind, macos_min, out)
        elif kind == "win32-x64":
            check_pe(data, kind, out)
        else:
            sys.exit("unknown kind %s" % kind)
        print("  %s" % ("ok" if len(out.failures) == before else "FAILED"))
    if out.failures:
        print("binary_check: %d problem(s)" % len(out.failures))
        sys.exit(1)


if __name__ == "__main__":
    main(sys.argv[1:])

#!/usr/bin/env python3
"""Gives every unsigned slice of a Mach-O executable an ad-hoc code signature, on any OS.

    python3 scripts/macho_sign.py FILE [FILE ...]

zig's linker (cargo zigbuild) signs arm64 macOS executables ad hoc, as Apple's ld64 does, but
not x86_64 ones. Intel Macs run unsigned code, yet an unsigned slice fails `codesign --verify`,
and Rosetta and some security tools treat it as suspect; the issue wants every macOS binary
signed. This writes the same signature the linker writes for arm64: an embedded SuperBlob with
one CodeDirectory (version 0x20400, SHA-256 page hashes over 4 KiB pages up to the signature,
flags adhoc|linker-signed, the __TEXT segment as the executable segment, no special slots), a
LC_CODE_SIGNATURE load command in the header's padding and __LINKEDIT grown to hold it. The
signature is computed over the final bytes, so it must run after stripping; a universal binary
has each unsigned slice signed and the fat file rebuilt with the same slice alignment.

A slice that is signed already is left alone; a file whose slices are all signed is not
rewritten. scripts/binary_check.py verifies the result (every page hash recomputed).
Standard library only.
"""

import hashlib
import struct
import sys

MH_MAGIC_64, FAT_MAGIC = 0xFEEDFACF, 0xCAFEBABE
LC_SEGMENT_64, LC_CODE_SIGNATURE = 0x19, 0x1D
CPU_ARM64 = 0x0100000C
PAGE_LOG2 = 12  # 4 KiB pages, as the linker hashes them
CS_ADHOC, CS_LINKER_SIGNED = 0x2, 0x20000
CS_EXECSEG_MAIN_BINARY = 0x1


def align(n, a):
    return (n + a - 1) // a * a


def sign_slice(data, ident):
    """Returns `data` (a thin 64-bit Mach-O) with an ad-hoc signature; unchanged if it has one."""
    magic, cputype, _sub, filetype, ncmds, sizeofcmds, _flags, _res = struct.unpack_from("<IiiIIIII", data, 0)
    if magic != MH_MAGIC_64:
        raise ValueError("not a 64-bit little-endian Mach-O (magic %#x)" % magic)
    off, linkedit, text, first_section = 32, None, None, len(data)
    for _ in range(ncmds):
        cmd, cmdsize = struct.unpack_from("<II", data, off)
        if cmd == LC_CODE_SIGNATURE:
            return data
        if cmd == LC_SEGMENT_64:
            name = data[off + 8:off + 24].rstrip(b"\0")
            _vmaddr, vmsize, fileoff, filesize = struct.unpack_from("<QQQQ", data, off + 24)
            nsects, = struct.unpack_from("<I", data, off + 64)
            for k in range(nsects):
                sect_offset, = struct.unpack_from("<I", data, off + 72 + 80 * k + 48)
                if sect_offset:
                    first_section = min(first_section, sect_offset)
            if name == b"__LINKEDIT":
                linkedit = (off, vmsize, fileoff, filesize)
            elif name == b"__TEXT":
                text = (fileoff, filesize)
        off += cmdsize
    end_of_cmds = 32 + sizeofcmds
    if linkedit is None or text is None:
        raise ValueError("no __LINKEDIT or __TEXT segment")
    if end_of_cmds + 16 > first_section or any(data[end_of_cmds:end_of_cmds + 16]):
        raise ValueError("no room in the header for LC_CODE_SIGNATURE")
    le_off, le_vmsize, le_fileoff, le_filesize = linkedit
    if le_fileoff + le_filesize != len(data):
        raise ValueError("__LINKEDIT does not end the file: the signature cannot be appended")

    sigoff = align(len(data), 16)
    ident_bytes = ident.encode() + b"\0"
    hash_size, page = 32, 1 << PAGE_LOG2
    n_code = (sigoff + page - 1) // page
    ident_offset = 88
    hash_offset = align(ident_offset + len(ident_bytes), 8)
    cd_len = hash_offset + n_code * hash_size
    blob_offset = 12 + 8
    datasize = align(blob_offset + cd_len, 16)

    out = bytearray(data)
    out += bytes(sigoff - len(data))
    # The header: one more load command.
    struct.pack_into("<II", out, 16, ncmds + 1, sizeofcmds + 16)
    struct.pack_into("<IIII", out, end_of_cmds, LC_CODE_SIGNATURE, 16, sigoff, datasize)
    # __LINKEDIT now runs to the end of the signature.
    new_filesize = sigoff + datasize - le_fileoff
    seg_align = 0x4000 if (cputype & 0xFFFFFFFF) == CPU_ARM64 else 0x1000
    struct.pack_into("<QQQQ", out, le_off + 24, struct.unpack_from("<Q", data, le_off + 24)[0],
                     max(le_vmsize, align(new_filesize, seg_align)), le_fileoff, new_filesize)

    hashes = b"".join(hashlib.sha256(bytes(out[i * page:min((i + 1) * page, sigoff)])).digest() for i in range(n_code))
    cd = struct.pack(">IIIIIIIIIBBBBIIIIQQQQ",
                     0xFADE0C02, cd_len, 0x20400, CS_ADHOC | CS_LINKER_SIGNED, hash_offset, ident_offset, 0, n_code,
                     sigoff, hash_size, 2, 0, PAGE_LOG2, 0, 0, 0, 0, 0,
                     text[0], text[1], CS_EXECSEG_MAIN_BINARY if filetype == 2 else 0)
    assert len(cd) == ident_offset
    cd += ident_bytes + bytes(hash_offset - ident_offset - len(ident_bytes)) + hashes
    superblob = struct.pack(">IIIII", 0xFADE0CC0, blob_offset + cd_len, 1, 0, blob_offset) + cd
    out += superblob + bytes(datasize - len(superblob))
    return bytes(out)


def sign_file(path, ident):
    with open(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack_from(">I", data, 0)
    if magic == FAT_MAGIC:
        nfat, = struct.unpack_from(">I", data, 4)
        archs = [struct.unpack_from(">iiIII", data, 8 + 20 * i) for i in range(nfat)]
        slices = [sign_slice(data[o:o + s], ident) for _c, _s, o, s, _a in archs]
        if all(new == data[o:o + s] for new, (_c, _s, o, s, _a) in zip(slices, archs)):
            return False
        header = struct.pack(">II", FAT_MAGIC, nfat)
        body, offset = [], align(8 + 20 * nfat, 1 << max(a for *_x, a in archs))
        for (cputype, sub, _o, _s, al), sl in zip(archs, slices):
            offset = align(offset, 1 << al)
            header += struct.pack(">iiIII", cputype, sub, offset, len(sl), al)
            body.append((offset, sl))
            offset += len(sl)
        out = bytearray(offset)
        out[:len(header)] = header
        for o, sl in body:
            out[o:o + len(sl)] = sl
        new = bytes(out)
    else:
        new = sign_slice(data, ident)
        if new == data:
            return False
    with open(path, "wb") as f:
        f.write(new)
    return True


def main(argv):
    if not argv:
        sys.exit(__doc__)
    for path in argv:
        changed = sign_file(path, "openclaw-mcp")
        print("%s: %s" % (path, "signed ad hoc" if changed else "every slice was signed already"))


if __name__ == "__main__":
    main(sys.argv[1:])

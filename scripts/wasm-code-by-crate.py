#!/usr/bin/env python3
"""Code bytes of a wasm module per crate, from its name section: what makes a module big.

Usage: scripts/wasm-code-by-crate.py FILE.wasm [TOP]   (default TOP 30)

Read cargo's module before wasm-opt and wasm-bindgen, which drop the names:
target/wasm-cpu/wasm32-unknown-unknown/web/smoothgrad_site.wasm (CPU) or target/wasm/… (WebGPU).
A function counts for the first crate in its (legacy-mangled) path: an `impl Trait for Type`
counts for Type's crate.
"""
import collections
import re
import sys


def leb128(data, at):
    value = shift = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, at


def skip_limits(data, at):
    flags, at = leb128(data, at)
    _, at = leb128(data, at)
    return leb128(data, at)[1] if flags & 1 else at


def functions(data):
    """(name, code bytes) of every function the module defines."""
    imported, sizes, names = 0, [], {}
    at = 8
    while at < len(data):
        section, at = data[at], at + 1
        size, at = leb128(data, at)
        end = at + size
        if section == 2:  # imports: function indices start after the imported functions
            count, cursor = leb128(data, at)
            for _ in range(count):
                for _ in range(2):  # module and field names
                    length, cursor = leb128(data, cursor)
                    cursor += length
                kind, cursor = data[cursor], cursor + 1
                if kind == 0:
                    imported += 1
                    cursor = leb128(data, cursor)[1]
                elif kind == 1:
                    cursor = skip_limits(data, cursor + 1)
                elif kind == 2:
                    cursor = skip_limits(data, cursor)
                elif kind == 3:
                    cursor += 2
                else:
                    cursor = leb128(data, cursor + 1)[1]  # tags
        elif section == 10:  # code
            count, cursor = leb128(data, at)
            for _ in range(count):
                length, cursor = leb128(data, cursor)
                sizes.append(length)
                cursor += length
        elif section == 0:
            length, cursor = leb128(data, at)
            if data[cursor:cursor + length] == b'name':
                cursor += length
                while cursor < end:
                    subsection, cursor = data[cursor], cursor + 1
                    length, cursor = leb128(data, cursor)
                    if subsection == 1:
                        count, entry = leb128(data, cursor)
                        for _ in range(count):
                            index, entry = leb128(data, entry)
                            width, entry = leb128(data, entry)
                            names[index] = data[entry:entry + width].decode('utf-8', 'replace')
                            entry += width
                    cursor += length
        at = end
    return [(names.get(imported + index, '?'), size) for index, size in enumerate(sizes)]


def crate(name):
    mangled = re.match(r'_ZN(\d+)', name)
    if mangled:
        first = name[mangled.end():mangled.end() + int(mangled.group(1))]
        first = re.sub(r'^_?\$LT\$', '', first)
    else:
        first = name.lstrip('<')
    word = re.match(r'[A-Za-z_][A-Za-z0-9_]*', first)
    return word.group(0) if word else first[:20]


def main():
    data = open(sys.argv[1], 'rb').read()
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 30
    by_crate = collections.Counter()
    for name, size in functions(data):
        by_crate[crate(name)] += size
    total = sum(by_crate.values())
    print(f'{total / 1e3:9.0f} KB of code')
    for name, size in by_crate.most_common(top):
        print(f'{size / 1e3:9.0f} KB {100 * size / total:5.1f} %  {name}')


if __name__ == '__main__':
    main()

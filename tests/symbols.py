#!/usr/bin/env python3
"""Symbol and header contract of libscrm.so.1.

Fails when:
  (a) the library defines a dynamic symbol that does not start with scrm_
      (or one that is not bound to a SCRM_* version node);
  (b) a function declared SCRM_API in include/scrm/*.h is not exported, or
      is missing from lib/libscrm.map, or the map lists a name that no header
      declares or the library does not define;
  (c) a public header is not covered: every include/scrm/*.h (and the
      generated version.h) needs tests/headers/h_<name>.c including it and
      its name in tests/headers/meson.build; the umbrella include/scrm.h must
      include every module header; a header declaring SCRM_API functions must
      wrap them in extern "C" for C++.

Usage: symbols.py --lib build/lib/libscrm.so.1 --headers include
                  --map lib/libscrm.map --header-tests tests/headers
"""

import argparse
import os
import re
import shutil
import subprocess
import sys

# Symbols the toolchain adds to every shared object.
TOOLCHAIN = {"_init", "_fini", "_edata", "_end", "__bss_start"}
VERSION_NODE = re.compile(r"^SCRM_\d+\.\d+$")


def strip_c(text):
    """Remove comments and preprocessor lines from C source."""
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    # Join continued preprocessor lines, then drop them.
    text = re.sub(r"\\\n", " ", text)
    return "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("#"))


API_DECL = re.compile(r"\bSCRM_API\b([^;{}()]*?)\b([A-Za-z_]\w*)\s*\(", re.S)


def declared_api(headers_dir):
    """{name: header} of every SCRM_API function in include/scrm/*.h."""
    decls = {}
    scrm_dir = os.path.join(headers_dir, "scrm")
    for fn in sorted(os.listdir(scrm_dir)):
        if not fn.endswith(".h"):
            continue
        with open(os.path.join(scrm_dir, fn), encoding="utf-8") as f:
            text = strip_c(f.read())
        for m in API_DECL.finditer(text):
            decls[m.group(2)] = fn
    return decls


def map_entries(map_path):
    """(names, problems) from the version script's global: sections."""
    with open(map_path, encoding="utf-8") as f:
        text = re.sub(r"/\*.*?\*/", " ", f.read(), flags=re.S)
    names, problems = {}, []
    for node, body in re.findall(r"([A-Za-z_][\w.]*)\s*\{(.*?)\}\s*[\w.]*\s*;", text, re.S):
        if not VERSION_NODE.match(node):
            problems.append(f"map node {node} is not named SCRM_<major>.<minor>")
        m = re.search(r"global\s*:(.*?)(?:\blocal\s*:|$)", body, re.S)
        if not m:
            continue
        for entry in re.findall(r"([^\s;]+)\s*;", m.group(1)):
            if entry in names:
                problems.append(f"{entry} is listed twice in the map ({names[entry]}, {node})")
            names[entry] = node
    return names, problems


def exported(lib):
    """{name: version} of the dynamic symbols defined by the library."""
    nm = shutil.which("nm") or "nm"
    out = subprocess.run([nm, "-D", "--defined-only", lib], check=True,
                         capture_output=True, text=True).stdout
    syms = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        kind, name = parts[1], parts[2]
        version = ""
        if "@" in name:
            name, _, version = name.partition("@")
            version = version.lstrip("@")
        if kind == "A" and VERSION_NODE.match(name):
            continue  # the version node itself
        syms[name] = (kind, version)
    return syms


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lib", required=True)
    ap.add_argument("--headers", required=True, help="the include/ directory")
    ap.add_argument("--map", required=True)
    ap.add_argument("--header-tests", required=True, help="tests/headers directory")
    args = ap.parse_args()

    errors = []
    decls = declared_api(args.headers)
    mapped, problems = map_entries(args.map)
    errors += problems
    syms = exported(args.lib)

    # (a) nothing but scrm_* leaves the library, each in a SCRM_ node.
    for name, (kind, version) in sorted(syms.items()):
        if name in TOOLCHAIN:
            continue
        if not name.startswith("scrm_"):
            errors.append(f"exported symbol {name} ({kind}) does not start with scrm_")
        elif not VERSION_NODE.match(version):
            errors.append(f"exported symbol {name} has no SCRM_ version node ({version or 'none'})")

    # (b) headers, map and binary agree.
    for name, header in sorted(decls.items()):
        if not name.startswith("scrm_"):
            errors.append(f"{header}: SCRM_API function {name} is not named scrm_*")
        if name not in mapped:
            errors.append(f"{header}: {name} is declared SCRM_API but missing from {args.map}")
        if name not in syms:
            errors.append(f"{header}: {name} is declared SCRM_API but not exported by {args.lib}")
    for name, node in sorted(mapped.items()):
        if "*" in name or "?" in name:
            errors.append(f"map entry {name} ({node}) is a wildcard; list names one by one")
            continue
        if name not in decls:
            errors.append(f"map entry {name} ({node}) is not declared SCRM_API in any header")
        if name not in syms:
            errors.append(f"map entry {name} ({node}) is not defined by the library")

    # (c) every header is covered by the header test and the umbrella.
    scrm_dir = os.path.join(args.headers, "scrm")
    headers = set()
    for fn in os.listdir(scrm_dir):
        if fn.endswith(".h"):
            headers.add(fn[:-2])
        elif fn.endswith(".h.in"):
            headers.add(fn[:-5])
    with open(os.path.join(args.header_tests, "meson.build"), encoding="utf-8") as f:
        listed = set(re.findall(r"'(\w+)'", f.read()))
    with open(os.path.join(args.headers, "scrm.h"), encoding="utf-8") as f:
        umbrella = set(re.findall(r'#\s*include\s*[<"]scrm/(\w+)\.h[>"]', f.read()))
    for h in sorted(headers):
        test_c = os.path.join(args.header_tests, f"h_{h}.c")
        if not os.path.exists(test_c):
            errors.append(f"include/scrm/{h}.h has no header test {test_c}")
        else:
            with open(test_c, encoding="utf-8") as f:
                if not re.search(rf"#\s*include\s*<scrm/{h}\.h>", f.read()):
                    errors.append(f"{test_c} does not #include <scrm/{h}.h>")
        if h not in listed:
            errors.append(f"include/scrm/{h}.h is not listed in {args.header_tests}/meson.build")
        if h not in umbrella:
            errors.append(f"include/scrm.h does not include <scrm/{h}.h>")
        path = os.path.join(scrm_dir, f"{h}.h")
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                text = f.read()
            if "SCRM_API" in strip_c(text) and not re.search(
                    r'#\s*ifdef\s+__cplusplus\s*\n\s*extern\s+"C"\s*\{', text):
                errors.append(f"include/scrm/{h}.h declares SCRM_API functions without extern \"C\"")

    print(f"{len(syms)} dynamic symbols, {len(decls)} SCRM_API declarations, "
          f"{len(mapped)} map entries, {len(headers)} public headers")
    for e in errors:
        print("FAIL:", e)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())

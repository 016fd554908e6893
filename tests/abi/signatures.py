#!/usr/bin/env python3
"""Compare the calling signatures of exported functions in two abidw XML files.

Second pass of tests/abi/check.sh. abidiff with --headers-dir ignores every
change to a type that is not defined in the public headers; libscrm's handles
are opaque structs defined in lib/, so swapping one handle type for another in
a signature (scrm_db * -> scrm_db_options *) is invisible to it. This pass
reduces each exported function to what a caller's machine code depends on:
base types by kind, signedness and size, typedefs resolved, struct and union
types by name only (their layout is private), qualifiers dropped, function
pointer types expanded. Any difference for a symbol of the baseline fails;
symbols only in the new file are additions and pass.

Usage: signatures.py BASELINE.abi CURRENT.abi
"""

import sys
import xml.etree.ElementTree as ET


def load(path):
    root = ET.parse(path).getroot()
    types = {}
    for el in root.iter():
        tid = el.get("id")
        if tid is not None:
            types.setdefault(tid, el)
    funcs, variables = {}, {}
    symbols = set()
    for el in root.iter("elf-symbol"):
        if el.get("is-defined") == "yes":
            version = el.get("version")
            sep = "@@" if el.get("is-default-version") == "yes" else "@"
            symbols.add(el.get("name") + (sep + version if version else ""))
    for el in root.iter("function-decl"):
        sym = el.get("elf-symbol-id")
        if sym:
            funcs[sym] = el
    for el in root.iter("var-decl"):
        sym = el.get("elf-symbol-id")
        if sym:
            variables[sym] = el
    return types, funcs, variables, symbols


def base_type(el):
    name = el.get("name", "")
    if name == "void":
        return "void"
    size = el.get("size-in-bits", "?")
    if name in ("float", "double", "long double"):
        return f"float{size}"
    if name == "_Bool" or name == "bool":
        return f"bool{size}"
    signed = "u" if "unsigned" in name else ("" if "signed" in name or "char" not in name else "c")
    return f"{signed}int{size}"


def describe(types, tid, depth=0):
    if tid is None:
        return "?"
    if depth > 40:
        return "..."
    el = types.get(tid)
    if el is None:
        return f"<{tid}>"
    tag = el.tag
    sub = el.get("type-id")
    if tag == "type-decl":
        return base_type(el)
    if tag == "typedef-decl":
        return describe(types, sub, depth + 1)
    if tag == "qualified-type-def":
        return describe(types, sub, depth + 1)
    if tag in ("pointer-type-def", "reference-type-def"):
        return describe(types, sub, depth + 1) + "*"
    if tag == "array-type-def":
        return describe(types, el.get("element-type-id"), depth + 1) + "[]"
    if tag == "class-decl":
        return "struct " + el.get("name", "?")
    if tag == "union-decl":
        return "union " + el.get("name", "?")
    if tag == "enum-decl":
        values = ",".join(f"{e.get('name')}={e.get('value')}" for e in el.iter("enumerator"))
        return f"enum {el.get('name', '?')}{{{values}}}"
    if tag in ("function-type", "function-decl"):
        return signature(types, el, depth + 1)
    return f"<{tag}>"


def signature(types, el, depth=0):
    params = []
    ret = "void"
    for child in el:
        if child.tag == "parameter":
            if child.get("is-variadic") == "yes":
                params.append("...")
            else:
                params.append(describe(types, child.get("type-id"), depth))
        elif child.tag == "return":
            ret = describe(types, child.get("type-id"), depth)
    return f"{ret}({', '.join(params)})"


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    old_types, old_funcs, old_vars, old_syms = load(sys.argv[1])
    new_types, new_funcs, new_vars, new_syms = load(sys.argv[2])
    errors, added = [], []
    # abidw links a symbol to its DWARF only with --exported-interfaces-only;
    # a symbol without a declaration could change unseen.
    for which, syms, funcs, variables in (("baseline", old_syms, old_funcs, old_vars),
                                          ("new library", new_syms, new_funcs, new_vars)):
        for sym in sorted(syms - set(funcs) - set(variables)):
            errors.append(f"{which}: {sym} has no declaration in the ABI dump, so its "
                          "signature cannot be checked (abidw --exported-interfaces-only?)")
    for sym, el in sorted(old_funcs.items()):
        if sym not in new_funcs:
            errors.append(f"function {sym} was removed")
            continue
        a = signature(old_types, el)
        b = signature(new_types, new_funcs[sym])
        if a != b:
            errors.append(f"function {sym} changed:\n    was {a}\n    now {b}")
    for sym, el in sorted(old_vars.items()):
        if sym not in new_vars:
            errors.append(f"variable {sym} was removed")
            continue
        a = describe(old_types, el.get("type-id"))
        b = describe(new_types, new_vars[sym].get("type-id"))
        if a != b:
            errors.append(f"variable {sym} changed:\n    was {a}\n    now {b}")
    added = sorted(set(new_funcs) - set(old_funcs)) + sorted(set(new_vars) - set(old_vars))
    print(f"{len(old_funcs)} baseline functions compared, {len(added)} added")
    for sym in added:
        print(f"  added: {sym}")
    for e in errors:
        print("FAIL:", e)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
